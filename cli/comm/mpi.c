/* comm/mpi.c - the communicator of a data-parallel run under mpirun, over
 * MPI (a build with MPI=1): the library's cn_comm on MPI_COMM_WORLD.  Run
 * without mpirun, training is alone and MPI is not started. */
#include "../cli.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

static int started; /* MPI_Init was called here */

/* Whether a launcher started this process as one of several (Open MPI,
 * or a PMIx launcher). */
static int launched(void)
{
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n)
        n = getenv("PMIX_SIZE");
    return n && atoi(n) > 1;
}

static cn_status mpi_status(int rc, const char *what)
{
    if (rc == MPI_SUCCESS)
        return CN_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    fprintf(stderr, "convnet: MPI %s failed: %s\n", what, text);
    return CN_ERR_IO;
}

/* MPI counts are ints: large blocks go in pieces. */
#define PIECE ((size_t)1 << 30)

static cn_status mpi_allreduce(void *user, float *data, size_t count)
{
    (void)user;
    for (size_t at = 0; at < count; at += PIECE) {
        int n = (int)(count - at < PIECE ? count - at : PIECE);
        cn_status st = mpi_status(
            MPI_Allreduce(MPI_IN_PLACE, data + at, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "allreduce");
        if (st)
            return st;
    }
    return CN_OK;
}

/* Buckets of the gradient block in flight: nonblocking allreduces. */
#define MAX_PENDING 4096
static MPI_Request pending[MAX_PENDING];
static int n_pending;

static cn_status mpi_allreduce_start(void *user, float *data, size_t count)
{
    (void)user;
    for (size_t at = 0; at < count; at += PIECE) {
        int n = (int)(count - at < PIECE ? count - at : PIECE);
        if (n_pending == MAX_PENDING) {
            fprintf(stderr, "convnet: more than %d gradient buckets in flight\n", MAX_PENDING);
            return CN_ERR_ARG;
        }
        cn_status st = mpi_status(MPI_Iallreduce(MPI_IN_PLACE, data + at, n, MPI_FLOAT, MPI_SUM,
                                                 MPI_COMM_WORLD, &pending[n_pending]),
                                  "allreduce");
        if (st)
            return st;
        n_pending++;
    }
    return CN_OK;
}

static cn_status mpi_allreduce_wait(void *user)
{
    (void)user;
    int n = n_pending;
    n_pending = 0;
    return mpi_status(MPI_Waitall(n, pending, MPI_STATUSES_IGNORE), "allreduce");
}

/* Open MPI advances nonblocking collectives inside its calls only. */
static void mpi_progress(void *user)
{
    (void)user;
    int done;
    if (n_pending)
        MPI_Testall(n_pending, pending, &done, MPI_STATUSES_IGNORE);
}

static cn_status mpi_broadcast(void *user, float *data, size_t count, int root)
{
    (void)user;
    for (size_t at = 0; at < count; at += PIECE) {
        int n = (int)(count - at < PIECE ? count - at : PIECE);
        cn_status st =
            mpi_status(MPI_Bcast(data + at, n, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast");
        if (st)
            return st;
    }
    return CN_OK;
}

static cn_status mpi_barrier(void *user)
{
    (void)user;
    return mpi_status(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

int cli_comm_open(int *argc, char ***argv, cn_comm *comm)
{
    *comm = (cn_comm){.rank = 0, .size = 1};
    if (!launched())
        return 0;
    int provided;
    /* Only the main thread calls MPI; OpenMP's threads compute. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cli_error("MPI did not start");
    started = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    *comm = (cn_comm){rank,
                      size,
                      NULL,
                      mpi_allreduce,
                      mpi_broadcast,
                      mpi_barrier,
                      mpi_allreduce_start,
                      mpi_allreduce_wait,
                      mpi_progress,
                      0};
    return 0;
}

void cli_comm_close(void)
{
    if (started)
        MPI_Finalize();
    started = 0;
}

const char *cli_comm_kind(void) { return "MPI"; }
