/* recipe.c - the training recipe's options (the library's table of recipe
 * keys), shared by the commands that train: train and doctor. */
#include "cli.h"

#include <string.h>

size_t cli_recipe_opts(cli_opt *opts, int base)
{
    size_t n = 0;
    for (size_t i = 0; i < cn_train_key_count() && i < CLI_MAX_RECIPE; i++)
        if (cn_train_key_at(i)->option)
            opts[n++] = (cli_opt){cn_train_key_at(i)->option, 1, base + (int)i};
    return n;
}

void cli_recipe_help(void)
{
    for (size_t i = 0; i < cn_train_key_count(); i++) {
        const cn_train_key *k = cn_train_key_at(i);
        if (!k->option)
            continue;
        char name[64];
        snprintf(name, sizeof name, "--%s %s", k->option, k->arg);
        printf("  %-16s ", name);
        cli_wrap(stdout, k->help, 19, 19, 79);
    }
}

int cli_recipe_take(const char *cmd, size_t i, const char *v, const char **given)
{
    cn_train_opts check;
    cn_train_opts_defaults(&check);
    if (cn_train_opts_set(&check, cn_train_key_at(i)->option, v))
        return cli_usage(cmd, "--%s", cn_last_error());
    given[i] = v;
    return 0;
}

cn_status cli_recipe_apply(const char *const *given, cn_train_opts *o)
{
    for (size_t i = 0; i < cn_train_key_count() && i < CLI_MAX_RECIPE; i++) {
        cn_status st = given[i] ? cn_train_opts_set(o, cn_train_key_at(i)->name, given[i]) : CN_OK;
        if (st)
            return st;
    }
    return CN_OK;
}
