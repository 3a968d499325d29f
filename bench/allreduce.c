/* allreduce.c - make bench-mpi: the time of one MPI_Allreduce (sum) of n
 * floats, as convnet's step does it with its gradient block.
 * usage: allreduce N [REPS]; prints "N floats: median SECONDS (min SECONDS)"
 * on rank 0. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    long n = argc > 1 ? atol(argv[1]) : 1;
    int reps = argc > 2 ? atoi(argv[2]) : 20, rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    float *buf = calloc((size_t)(n > 0 ? n : 1), sizeof *buf);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!buf || !t || n < 1 || reps < 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (int w = 0; w < 3; w++) /* warm-up: connections made, pages touched */
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[r] = MPI_Wtime() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    if (rank == 0)
        printf("%ld floats: median %.6f s (min %.6f s)\n", n, t[reps / 2], t[0]);
    free(buf);
    free(t);
    MPI_Finalize();
    return 0;
}
