/* comm/solo.c - a build without MPI: training is always alone. */
#include "../cli.h"

int cli_comm_open(int *argc, char ***argv, cn_comm *comm)
{
    (void)argc;
    (void)argv;
    *comm = (cn_comm){.rank = 0, .size = 1};
    return 0;
}

void cli_comm_close(void) {}

const char *cli_comm_kind(void) { return NULL; }
