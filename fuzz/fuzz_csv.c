/* fuzz_csv.c - CSV lists of images (file,label) through the pictures
 * library's reader (src/vis/folder.c's cn_csv_list_parse). */
#include "fuzz.h"

#include "vis/vis.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_csv_list c;
    if (cn_csv_list_parse((const char *)data, size, "fz.csv", &c) != CN_OK) {
        FZ_ASSERT(strncmp(cn_last_error(), "fz.csv", 6) == 0 && c.n == 0 && !c.file);
        return 0;
    }
    size_t last = 1;
    for (size_t i = 0; i < c.n; i++) {
        /* every row has a file and a label, on a later line than the last */
        FZ_ASSERT(c.file[i][0] != '\0' && c.label[i][0] != '\0');
        FZ_ASSERT(c.line[i] > last);
        FZ_ASSERT(strlen(c.file[i]) < size && strlen(c.label[i]) < size);
        last = c.line[i];
    }
    cn_csv_list_free(&c);
    return 0;
}
