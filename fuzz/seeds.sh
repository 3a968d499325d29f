#!/bin/sh
# seeds.sh - writes the fuzz targets' seed corpora into fuzz/corpus/<target>:
# small valid files and broken ones (truncated, lying headers).  Run from the
# repository root after make (the model file seed is written by
# build/convnet); needs /usr/bin/python3 with PIL for the image seeds.  The
# corpora are checked in; this script shows how they were made.
#
# Inputs found by fuzzing are added to the corpora by hand (named after what
# they found), not by this script.
set -eu
corpus=fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$corpus/idx" "$corpus/cifar" "$corpus/cfg" "$corpus/safetensors" "$corpus/image" "$corpus/log"

/usr/bin/python3 - "$corpus" "$tmp" <<'EOF'
import gzip, io, os, struct, sys, zlib

corpus, tmp = sys.argv[1], sys.argv[2]

def put(target, name, data):
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)

# --- IDX: a flags byte (bit 0: the harness gzips both files), the image file's
# length (16 bits, little-endian), the image file, the label file.
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data

def idx_input(images, labels, flags=0):
    return bytes([flags]) + struct.pack("<H", len(images)) + images + labels

imgs = idx([3, 4, 4], bytes(range(48)))
labs = idx([3], bytes([0, 7, 2]))
put("idx", "valid-raw", idx_input(imgs, labs))
put("idx", "valid-harness-gz", idx_input(imgs, labs, 1))
put("idx", "valid-gz", idx_input(gzip.compress(imgs, mtime=0), gzip.compress(labs, mtime=0)))
put("idx", "valid-4d", idx_input(idx([2, 3, 2, 2], bytes(range(24))), idx([2], bytes([1, 1]))))
put("idx", "truncated", idx_input(imgs[:-5], labs))
put("idx", "too-long", idx_input(imgs + b"\0", labs))
put("idx", "header-cut", idx_input(imgs[:9], labs))
put("idx", "huge-claim", idx_input(idx([10**9, 10**5, 10**5], bytes(16)), labs))
put("idx", "huge-claim-gz", idx_input(gzip.compress(idx([10**9, 10**5, 10**5], bytes(16)), mtime=0),
                                      gzip.compress(labs, mtime=0)))
put("idx", "big-claim-gz", idx_input(idx([4000, 1000, 1000], bytes(64)), labs, 1))
put("idx", "zero-dim", idx_input(idx([0, 4, 4], b""), idx([0], b"")))
put("idx", "label-count", idx_input(imgs, idx([2], bytes([0, 1]))))
put("idx", "wrong-type", idx_input(bytes([0, 0, 0x0d, 3]) + imgs[4:], labs))
gz = gzip.compress(imgs, mtime=0)
put("idx", "gz-corrupt", idx_input(gz[:20] + bytes([gz[20] ^ 0x55]) + gz[21:], gzip.compress(labs, mtime=0)))
put("idx", "gz-cut", idx_input(gz[:len(gz) // 2], gzip.compress(labs, mtime=0)))

# --- CIFAR-10: records of a label byte and 3072 pixel bytes.
def record(label, seed):
    return bytes([label]) + bytes((seed * 31 + i * 7) & 255 for i in range(3072))

put("cifar", "one-record", record(3, 1))
put("cifar", "two-records", record(9, 2) + record(0, 3))
put("cifar", "label-10", record(10, 4))
put("cifar", "partial-record", record(1, 5)[:1000])
put("cifar", "record-and-a-bit", record(2, 6) + b"\x05")
put("cifar", "empty", b"")

# --- model descriptions
small = (b"[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n"
         b"[train]\nbatch=4\nlr=0.05\nseed=9\nepochs=1\n"
         b"[conv]\nfilters=2\nsize=3\npad=1\n[batchnorm]\n[relu]\n[maxpool]\n"
         b"[conv]\nfilters=2\nsize=3\npad=1\nname=c2\n[shortcut]\nfrom=maxpool1\n"
         b"[avgpool]\nsize=3\n[dropout]\nrate=0.2\n[fc]\noutputs=3\n[softmax]\n")
put("cfg", "small-resnet.cfg", small)
put("cfg", "comments.cfg", b"# comment\n[net] ; section\n channels = 3 \t\nheight=8\nwidth=8\n"
    b"classes=2\nnormalise=channel\n[train]\noptimizer=adamw\nlr_policy=onecycle\nflip=1\n"
    b"shift=2\n[conv]\nfilters=4\nsize=3\nstride=2\n[leaky]\nslope=0.1\n[fc]\noutputs=2\n"
    b"[sigmoid]\n[fc]\noutputs=2\n[tanh]\n[fc]\noutputs=2\n[softmax]\n")
put("cfg", "unknown-key.cfg", b"[net]\nchannels=1\nheight=2\nwidth=2\nclasses=2\ncolour=blue\n[softmax]\n")
put("cfg", "bad-values.cfg", b"[net]\nchannels=1e999\nheight=-2\nwidth=2.5\nclasses=nan\n[fc]\noutputs=0x10\n")
put("cfg", "syntax.cfg", b"[net\nchannels\n= 3\n[]\n[a b]\nkey=\n")
put("cfg", "nul.cfg", b"[net]\nchannels=1\0\n")
put("cfg", "huge-net.cfg", b"[net]\nchannels=4096\nheight=65536\nwidth=65536\nclasses=100000\n"
    b"[conv]\nfilters=65536\nsize=1024\npad=1023\n[fc]\noutputs=100000\n[softmax]\n")
for name in ("tiny.cfg", "conv.cfg", "cifar-tiny.cfg", "bad.cfg"):
    with open(os.path.join("tests/fixtures", name), "rb") as f:
        put("cfg", name, f.read())

# --- safetensors (the model file seeds come from build/convnet, below)
def st(header, data):
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + data

put("safetensors", "plain.st", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                  '"__metadata__":{"k":"v"}}', struct.pack("<2f", 1.5, -2)))
put("safetensors", "dtypes.st", st('{"b":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},'
                                   '"c":{"dtype":"U8","shape":[],"data_offsets":[4,5]}}', bytes(5)))
put("safetensors", "lying-length.st", struct.pack("<Q", 10**12) + b'{"a":1}')
put("safetensors", "100GB-tensor.st", st('{"a":{"dtype":"F32","shape":[25000000000],'
                                         '"data_offsets":[0,100000000000]}}', bytes(8)))
put("safetensors", "shape-overflow.st", st('{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],'
                                           '"data_offsets":[0,8]}}', bytes(8)))
put("safetensors", "shape-offsets-differ.st", st('{"a":{"dtype":"F32","shape":[3],'
                                                 '"data_offsets":[0,8]}}', bytes(8)))
put("safetensors", "overlap.st", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                    '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', bytes(12)))

# --- images, each a few pixels: a dark digit-like stroke on light paper
from PIL import Image
im = Image.new("L", (12, 10), 230)
for y in range(2, 8):
    im.putpixel((5, y), 20)
    im.putpixel((6, y), 40)
rgb = im.convert("RGB")
rgba = Image.new("RGBA", (9, 7), (0, 0, 0, 0))
for x in range(2, 7):
    rgba.putpixel((x, 3), (10, 200, 30, 255))
def save(img, name, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    put("image", name, b.getvalue())
    return b.getvalue()
png = save(im, "grey.png", "PNG")
save(rgba, "rgba.png", "PNG")
save(im.convert("I;16"), "grey16.png", "PNG")
save(rgb, "rgb.jpg", "JPEG", quality=80)
save(im, "grey-progressive.jpg", "JPEG", progressive=True)
save(rgb, "rgb.bmp", "BMP")
save(im, "grey.pgm", "PPM")
save(rgb, "rgb.ppm", "PPM")
save(im.convert("P"), "palette.gif", "GIF")
save(rgb, "rgb.tga", "TGA")
save(rgba, "rgba-rle.tga", "TGA", compression="tga_rle")
save(Image.new("L", (1, 1), 0), "one-pixel.png", "PNG")
put("image", "truncated.png", png[: len(png) // 2])
# A PNG header claiming 60000 x 60000 pixels over a few bytes of data.
ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
put("image", "huge-claim.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
    chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b""))
put("image", "huge-claim.pgm", b"P5\n65535 65535\n255\n" + bytes(64))
put("image", "not-an-image.txt", b"hello\n")

# --- CSV training logs (convnet plot, convnet report); a log written by
# convnet train itself is added below.
head = b"epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,lr,images_per_s,elapsed_s\n"
rows = b"0.5,10,1.2,0.6,,,0.1,900.0,0.5\n1,20,0.8,0.75,0.7,0.8,0.1,950.0,1.0\n"
put("log", "two-rows.csv", head + rows)
put("log", "crlf.csv", (head + rows).replace(b"\n", b"\r\n"))
put("log", "minimal.csv", b"epoch,train_loss\n1,0.5\n")
put("log", "columns-moved.csv", b"val_accuracy,x,train_loss,epoch\n0.9,a,0.3,2\n,,0.2,3\n")
put("log", "header-only.csv", head)
put("log", "empty.csv", b"")
put("log", "not-a-log.csv", b"a,b,c\n1,2,3\n")
put("log", "bad-number.csv", b"epoch,train_loss\n1,abc\n")
put("log", "no-epoch.csv", b"epoch,train_loss\n,0.5\n")
put("log", "blank-lines.csv", b"epoch,train_loss\n\n  \t\n1,0.5\n\n2,0.4\n")
put("log", "extremes.csv", b"epoch,train_loss,train_accuracy,val_loss,val_accuracy\n"
    b"-1e300,1e300,-1e300,1e-300,1e300\n1e300,-1e300,1e300,-1e-300,-1e300\n0,0,0,0,0\n")
put("log", "one-value.csv", b"epoch,train_loss,val_accuracy\n1,,\n1,,\n")
put("log", "backwards.csv", b"epoch,train_loss,val_loss\n3,1,2\n1,2,1\n2,0.5,\n3,1,2\n")
put("log", "nan-inf.csv", b"epoch,train_loss\n1,nan\n2,inf\n3,1e999\n")
put("log", "long-line.csv", b"epoch,train_loss\n1," + b"1" * 5000 + b"\n2,0.1\n")
# A line cut after 4095 bytes (the reader's buffer once) would leave a row
# "5,0.1" that is not in the log; a long header would hide a column.
put("log", "long-line-two-rows.csv", b"epoch,train_loss,note\n1,0.5," + b"a" * 4089 + b"5,0.1\n")
put("log", "long-header.csv", b"epoch,train_loss," + b"x" * 5000 + b",val_loss\n1,0.5,,0.4\n2,0.3,,0.2\n")
put("log", "many-columns.csv", b",".join(b"c%d" % i for i in range(80)) + b",epoch,train_loss\n" +
    b",".join(b"%d" % i for i in range(82)) + b"\n")
put("log", "nul.csv", b"epoch,train_loss\n1,0.5\0\n2\0,0.4\n")
EOF

# A model file written by convnet itself: 4 steps on 16 IDX images of 6x6.
/usr/bin/python3 - "$tmp" <<'EOF'
import struct, sys
d = sys.argv[1]
n = 16
with open(d + "/train-images-idx3-ubyte", "wb") as f:
    f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", n, 6, 6) + bytes((i * 37) % 256 for i in range(n * 36)))
with open(d + "/train-labels-idx1-ubyte", "wb") as f:
    f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + bytes(i % 3 for i in range(n)))
EOF
for optim in sgd adam; do
    build/convnet train "$corpus/cfg/small-resnet.cfg" --data "$tmp" --val 0 --epochs 1 \
        --threads 1 --optimizer $optim --quiet -o "$tmp/m.safetensors" --log "$tmp/m.csv" >/dev/null
    cp "$tmp/m.safetensors" "$corpus/safetensors/model-$optim.st"
done
cp "$tmp/m.csv" "$corpus/log/train.csv"
# A model file cut short, and one whose description lies about its size.
head -c 1500 "$tmp/m.safetensors" >"$corpus/safetensors/model-cut.st"
/usr/bin/python3 - "$tmp/m.safetensors" "$corpus/safetensors/model-huge-net.st" <<'EOF'
import sys, struct
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = b[8:8 + n].decode().replace("height=6\\nwidth=6", "height=60000\\nwidth=60000")
h = h.encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b[8 + n:])
EOF
# CSV lists of images, and data caches (one written by the library's writer
# through build/synth_cache, then cut short, and with a label out of range).
mkdir -p "$corpus/csv" "$corpus/datacache"
printf 'file,label\na.png,cat\nb/c.png,dog\n' >"$corpus/csv/plain.csv"
printf '\357\273\277File,Label\r\n"a, b.png","dog ""big"""\r\n\r\n"multi\nline.png",cat' \
    >"$corpus/csv/quotes-crlf-bom.csv"
printf 'file,label\nx.png\n' >"$corpus/csv/one-field.csv"
printf 'file,label\n"x.png,a\n' >"$corpus/csv/open-quote.csv"
build/synth_cache "$corpus/datacache/small.st" 6 1 3 2 3 >/dev/null
head -c 200 "$corpus/datacache/small.st" >"$corpus/datacache/cut.st"
/usr/bin/python3 - "$corpus/datacache/small.st" "$corpus/datacache/label-out.st" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-4] = 9
open(sys.argv[2], "wb").write(bytes(b))
EOF
du -sh "$corpus"
