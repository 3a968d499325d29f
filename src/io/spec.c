/* spec.c - the model description: an INI-style text of sections and
 * "key = value" lines, with '#' or ';' comments.  The syntax, [net] and
 * [train] are checked here, with source:line in every message; each layer's
 * kind, keys and shapes are checked by the layer when the network is built
 * (net.c), through cn_section_read. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A model description larger than this is not one. */
#define MAX_SPEC_BYTES (1u << 20)
/* Nor is one with more layers, or a section with more keys (the largest has
 * 15): checking names is quadratic in these counts. */
#define MAX_LAYERS       10000
#define MAX_SECTION_KEYS 64

static const char *const norms[] = {"global", "channel", NULL};

static const cn_key net_keys[] = {
    {"channels", 1, 1, 4096, 0, 1, NULL}, {"height", 1, 1, 65536, 0, 1, NULL},
    {"width", 1, 1, 65536, 0, 1, NULL},   {"classes", 1, 2, 100000, 0, 0, NULL},
    {"mean", 0, -1e6, 1e6, 0, 0, NULL},   {"std", 0, 1e-6, 1e6, 1, 0, NULL},
    {"normalise", 1, 0, 1, 0, 0, norms},
};
enum { NET_C, NET_H, NET_W, NET_CLASSES, NET_MEAN, NET_STD, NET_NORM, NET_NKEYS };

const cn_entry *cn_section_get(const cn_section *sec, const char *key)
{
    for (size_t i = 0; i < sec->n_entries; i++)
        if (strcmp(sec->entries[i].key, key) == 0)
            return &sec->entries[i];
    return NULL;
}

int cn_is_layer_section(const cn_section *sec)
{
    return strcmp(sec->kind, "net") != 0 && strcmp(sec->kind, "train") != 0;
}

/* Edit distance between a and b (insertions, deletions, substitutions and
 * swaps of neighbours), or 3 when it is 3 or more: near misses only. */
static int distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 31 || m > 31 || (n > m ? n - m : m - n) > 2)
        return 3;
    int d[32][32];
    for (size_t i = 0; i <= n; i++)
        for (size_t j = 0; j <= m; j++) {
            if (i == 0 || j == 0) {
                d[i][j] = (int)(i + j);
                continue;
            }
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + cost;
            best = d[i - 1][j] + 1 < best ? d[i - 1][j] + 1 : best;
            best = d[i][j - 1] + 1 < best ? d[i][j - 1] + 1 : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m] < 3 ? d[n][m] : 3;
}

const char *cn_nearest(const char *word, const char *const *words, size_t n)
{
    int best = 3;
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        int d = distance(word, words[i]);
        if (d < best && 2 * (size_t)d < strlen(word)) {
            best = d;
            pick = words[i];
        }
    }
    return pick;
}

/* " (did you mean 'x'?)" for the nearest of the n words (cn_nearest), or "". */
void cn_suggest(char *buf, size_t size, const char *word, const char *const *words, size_t n,
                const char *open, const char *close)
{
    const char *pick = cn_nearest(word, words, n);
    if (pick)
        snprintf(buf, size, " (did you mean %s%s%s?)", open, pick, close);
    else
        buf[0] = '\0';
}

static void list_keys(char *buf, size_t size, const cn_key *keys, size_t nkeys, int is_layer)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < nkeys && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", keys[i].name);
    if (is_layer && len < size)
        snprintf(buf + len, size - len, "%sname", nkeys ? ", " : "");
    if (!nkeys && !is_layer)
        snprintf(buf, size, "none");
}

cn_status cn_section_read(const cn_spec *spec, const cn_section *sec, const cn_key *keys,
                          size_t nkeys, int is_layer, double *vals)
{
    const char *src = spec->source;
    for (size_t e = 0; e < sec->n_entries; e++) {
        const cn_entry *en = &sec->entries[e];
        int known = is_layer && strcmp(en->key, "name") == 0;
        for (size_t k = 0; k < nkeys && !known; k++)
            known = strcmp(en->key, keys[k].name) == 0;
        if (!known) {
            char list[256], hint[64];
            const char *names[CN_MAX_KEYS + 16] = {NULL};
            size_t n_names = 0;
            for (size_t k = 0; k < nkeys && n_names + 1 < sizeof names / sizeof names[0]; k++)
                names[n_names++] = keys[k].name;
            if (is_layer)
                names[n_names++] = "name";
            cn_suggest(hint, sizeof hint, en->key, names, n_names, "'", "'");
            list_keys(list, sizeof list, keys, nkeys, is_layer);
            return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] has no key '%s'%s; its keys are: %s", src,
                           en->line, sec->kind, en->key, hint, list);
        }
    }
    for (size_t k = 0; k < nkeys; k++) {
        const cn_key *key = &keys[k];
        const cn_entry *en = cn_section_get(sec, key->name);
        if (!en) {
            if (key->required)
                return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] needs the key '%s'", src, sec->line,
                               sec->kind, key->name);
            vals[k] = key->def;
            continue;
        }
        if (key->choices) {
            size_t c = 0;
            while (key->choices[c] && strcmp(key->choices[c], en->value) != 0)
                c++;
            if (!key->choices[c]) {
                char list[128];
                size_t len = 0;
                for (size_t i = 0; key->choices[i] && len < sizeof list; i++)
                    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                            key->choices[i]);
                return cn_fail(CN_ERR_SPEC, "%s:%d: '%s' must be one of: %s (got '%s')", src,
                               en->line, key->name, list, en->value);
            }
            vals[k] = (double)c;
            continue;
        }
        if (key->type == CN_KEY_LAYER) {
            vals[k] = 0.0;
            continue;
        }
        char *end;
        errno = 0;
        double v = strtod(en->value, &end);
        if (end == en->value || *end != '\0' || errno == ERANGE || !isfinite(v))
            return cn_fail(CN_ERR_SPEC, "%s:%d: '%s' must be a %s, got '%s'", src, en->line,
                           key->name, key->type == CN_KEY_INT ? "whole number" : "number",
                           en->value);
        if (key->type == CN_KEY_INT && v != floor(v))
            return cn_fail(CN_ERR_SPEC, "%s:%d: '%s' must be a whole number, got '%s'", src,
                           en->line, key->name, en->value);
        if (v < key->min || v > key->max)
            return cn_fail(CN_ERR_SPEC, "%s:%d: '%s' must be between %g and %g, got '%s'", src,
                           en->line, key->name, key->min, key->max, en->value);
        vals[k] = v;
    }
    return CN_OK;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static const char *skip_space(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    return s;
}

static const char *trim_end(const char *s, const char *end)
{
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    return end;
}

static int is_word(const char *s, const char *end)
{
    if (s == end)
        return 0;
    for (; s < end; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return 0;
    return 1;
}

void cn_spec_free(cn_spec *spec)
{
    if (!spec)
        return;
    for (size_t i = 0; i < spec->n_sections; i++) {
        cn_section *sec = &spec->sections[i];
        for (size_t e = 0; e < sec->n_entries; e++) {
            free(sec->entries[e].key);
            free(sec->entries[e].value);
        }
        free(sec->entries);
        free(sec->kind);
    }
    free(spec->sections);
    free(spec->text);
    free(spec->source);
    free(spec);
}

/* Splits text into sections and entries. */
static cn_status tokenize(cn_spec *spec)
{
    const char *p = spec->text, *src = spec->source;
    size_t cap_sections = 0;
    int line = 0;
    while (*p) {
        line++;
        const char *eol = strchr(p, '\n');
        if (!eol)
            eol = p + strlen(p);
        const char *next = *eol ? eol + 1 : eol;
        /* Strip comments: '#' or ';' anywhere on the line. */
        const char *end = p;
        while (end < eol && *end != '#' && *end != ';')
            end++;
        const char *s = skip_space(p, end);
        end = trim_end(s, end);
        p = next;
        if (s == end)
            continue;
        if (*s == '[') {
            if (end[-1] != ']' || !is_word(s + 1, end - 1))
                return cn_fail(CN_ERR_SPEC,
                               "%s:%d: expected a section header like [conv], got '%.*s'", src,
                               line, (int)(end - s), s);
            if (spec->n_sections == cap_sections) {
                size_t cap = cap_sections ? cap_sections * 2 : 16;
                cn_section *ns = realloc(spec->sections, cap * sizeof *ns);
                if (!ns)
                    return cn_fail(CN_ERR_NOMEM, "%s: out of memory", src);
                spec->sections = ns;
                cap_sections = cap;
            }
            cn_section *sec = &spec->sections[spec->n_sections];
            memset(sec, 0, sizeof *sec);
            sec->kind = dup_range(s + 1, (size_t)(end - s - 2));
            sec->line = line;
            if (!sec->kind)
                return cn_fail(CN_ERR_NOMEM, "%s: out of memory", src);
            spec->n_sections++;
            continue;
        }
        const char *eq = memchr(s, '=', (size_t)(end - s));
        if (!eq)
            return cn_fail(CN_ERR_SPEC, "%s:%d: expected 'key = value' or a [section], got '%.*s'",
                           src, line, (int)(end - s), s);
        const char *kend = trim_end(s, eq), *v = skip_space(eq + 1, end);
        if (!is_word(s, kend))
            return cn_fail(CN_ERR_SPEC, "%s:%d: expected a key name before '=', got '%.*s'", src,
                           line, (int)(kend - s), s);
        if (v == end)
            return cn_fail(CN_ERR_SPEC, "%s:%d: '%.*s' has no value", src, line, (int)(kend - s),
                           s);
        if (spec->n_sections == 0)
            return cn_fail(CN_ERR_SPEC, "%s:%d: '%.*s' comes before any [section]", src, line,
                           (int)(kend - s), s);
        cn_section *sec = &spec->sections[spec->n_sections - 1];
        if (sec->n_entries == MAX_SECTION_KEYS)
            return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] has more than %d keys", src, line, sec->kind,
                           MAX_SECTION_KEYS);
        char *key = dup_range(s, (size_t)(kend - s));
        if (!key)
            return cn_fail(CN_ERR_NOMEM, "%s: out of memory", src);
        const cn_entry *dup = cn_section_get(sec, key);
        if (dup) {
            int first = dup->line;
            free(key);
            return cn_fail(CN_ERR_SPEC, "%s:%d: '%.*s' is set twice in [%s] (first on line %d)",
                           src, line, (int)(kend - s), s, sec->kind, first);
        }
        cn_entry *ne = realloc(sec->entries, (sec->n_entries + 1) * sizeof *ne);
        if (!ne) {
            free(key);
            return cn_fail(CN_ERR_NOMEM, "%s: out of memory", src);
        }
        sec->entries = ne;
        cn_entry *en = &sec->entries[sec->n_entries++];
        en->key = key;
        en->value = dup_range(v, (size_t)(end - v));
        en->line = line;
        if (!en->value)
            return cn_fail(CN_ERR_NOMEM, "%s: out of memory", src);
    }
    return CN_OK;
}

/* Checks a layer's name: letters, digits and '_' only, at most 31 chars. */
static cn_status check_name(const cn_spec *spec, const cn_entry *en)
{
    size_t len = strlen(en->value);
    int ok = len > 0 && len < 32 && isalpha((unsigned char)en->value[0]);
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)en->value[i]) || en->value[i] == '_';
    if (!ok)
        return cn_fail(CN_ERR_SPEC,
                       "%s:%d: a layer name starts with a letter and has up to 31 letters, "
                       "digits or '_', got '%s'",
                       spec->source, en->line, en->value);
    return CN_OK;
}

static cn_status interpret(cn_spec *spec)
{
    const cn_section *net = NULL, *train = NULL;
    size_t n_layers = 0;
    for (size_t i = 0; i < spec->n_sections; i++) {
        const cn_section *sec = &spec->sections[i];
        if (strcmp(sec->kind, "net") == 0 || strcmp(sec->kind, "train") == 0) {
            const cn_section **slot = sec->kind[0] == 'n' ? &net : &train;
            if (*slot)
                return cn_fail(CN_ERR_SPEC,
                               "%s:%d: a second [%s] section (the first is on line %d)",
                               spec->source, sec->line, sec->kind, (*slot)->line);
            if (sec->kind[0] == 'n' && n_layers)
                return cn_fail(CN_ERR_SPEC, "%s:%d: [net] must come before the first layer",
                               spec->source, sec->line);
            *slot = sec;
            continue;
        }
        if (n_layers == MAX_LAYERS)
            return cn_fail(CN_ERR_SPEC,
                           "%s:%d: more than %d layers; convnet builds networks of up to %d",
                           spec->source, sec->line, MAX_LAYERS, MAX_LAYERS);
        /* The layer's kind and keys are the layer's to check, when the
         * network is built (net.c): this file reads syntax. */
        cn_status st;
        const cn_entry *name = cn_section_get(sec, "name");
        if (name && (st = check_name(spec, name)))
            return st;
        n_layers++;
    }
    if (!net)
        return cn_fail(CN_ERR_SPEC,
                       "%s: no [net] section: it gives the input (channels, height, "
                       "width) and the number of classes",
                       spec->source);
    if (!n_layers)
        return cn_fail(CN_ERR_SPEC, "%s: the model has no layers", spec->source);

    double v[NET_NKEYS];
    cn_status st = cn_section_read(spec, net, net_keys, NET_NKEYS, 0, v);
    if (st)
        return st;
    spec->net_line = net->line;
    /* classes may be left out: the last layer's outputs decide (net.c),
     * and the data are checked against them when training starts. */
    const cn_entry *classes = cn_section_get(net, "classes");
    spec->classes_line = classes ? classes->line : net->line;
    spec->input = (cn_shape){(size_t)v[NET_C], (size_t)v[NET_H], (size_t)v[NET_W]};
    spec->classes = (size_t)v[NET_CLASSES];
    spec->mean = (float)v[NET_MEAN];
    spec->std = (float)v[NET_STD];
    spec->norm_channel = (int)v[NET_NORM];

    static const cn_section empty = {"train", 0, NULL, 0};
    cn_key keys[CN_RECIPE_KEYS];
    double tv[CN_RECIPE_KEYS];
    cn_recipe_section_keys(keys);
    st = cn_section_read(spec, train ? train : &empty, keys, CN_RECIPE_KEYS, 0, tv);
    if (st)
        return st;
    for (size_t k = 0; k < CN_RECIPE_KEYS; k++)
        cn_recipe_put(&spec->train, cn_recipe_key_at(k), tv[k]);
    return CN_OK;
}

cn_status cn_spec_parse(const char *text, const char *source, cn_spec **out)
{
    *out = NULL;
    if (!text)
        return cn_fail(CN_ERR_ARG, "cn_spec_parse: text is NULL");
    if (!source)
        source = "<model>";
    cn_spec *spec = calloc(1, sizeof *spec);
    if (!spec)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    spec->text = dup_range(text, strlen(text));
    spec->source = dup_range(source, strlen(source));
    if (!spec->text || !spec->source) {
        cn_spec_free(spec);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    cn_status st = tokenize(spec);
    if (!st)
        st = interpret(spec);
    if (st) {
        cn_spec_free(spec);
        return st;
    }
    *out = spec;
    return CN_OK;
}

cn_status cn_spec_load(const char *path, cn_spec **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_fail(CN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(MAX_SPEC_BYTES + 1);
    if (!buf) {
        fclose(f);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, MAX_SPEC_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    cn_status st;
    if (err)
        st = cn_fail(CN_ERR_IO, "%s: read error", path);
    else if (n > MAX_SPEC_BYTES)
        st = cn_fail(CN_ERR_SPEC, "%s: larger than %u bytes: not a model description", path,
                     MAX_SPEC_BYTES);
    else if (memchr(buf, '\0', n))
        st = cn_fail(CN_ERR_SPEC,
                     "%s: contains NUL bytes: not a model description (a model "
                     "file ends in .safetensors)",
                     path);
    else {
        buf[n] = '\0';
        st = cn_spec_parse(buf, path, out);
    }
    free(buf);
    return st;
}

cn_status cn_spec_clone(const cn_spec *spec, cn_spec **out)
{
    return cn_spec_parse(spec->text, spec->source, out);
}

const char *cn_spec_text(const cn_spec *spec) { return spec->text; }
const char *cn_spec_source(const cn_spec *spec) { return spec->source; }

void cn_spec_train_opts(const cn_spec *spec, cn_train_opts *opts) { *opts = spec->train; }
