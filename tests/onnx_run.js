// onnx_run.js ORT_DIR MODEL.onnx PIXELS N C H W OUT - ONNX Runtime's class
// probabilities for a file of 8-bit pixels (N, C, H, W): the model's input is
// pixels / 255 as float32.  The first sample runs alone and the others as one
// batch (the batch dimension is symbolic); OUT receives (N, classes) float32
// in the host's byte order.  ORT_DIR holds node_modules/onnxruntime-node
// (tests/onnx.sh installs it there).
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
    const [ortDir, model, pixels, ns, cs, hs, ws, out] = process.argv.slice(2);
    const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));
    const [n, c, h, w] = [ns, cs, hs, ws].map(Number);
    const per = c * h * w;
    const bytes = fs.readFileSync(pixels);
    if (bytes.length < n * per)
        throw new Error(`${pixels}: ${bytes.length} bytes, expected ${n * per}`);
    const x = new Float32Array(n * per);
    for (let i = 0; i < n * per; i++)
        x[i] = bytes[i] / 255;
    const session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
    });
    const parts = [];
    for (const [first, count] of [[0, 1], [1, n - 1]]) {
        if (count === 0)
            continue;
        const input = new ort.Tensor('float32', x.subarray(first * per, (first + count) * per),
                                     [count, c, h, w]);
        const result = await session.run({input});
        const p = result.probabilities;
        if (p.dims.length !== 2 || p.dims[0] !== count)
            throw new Error(`probabilities have shape [${p.dims}], expected [${count}, classes]`);
        parts.push(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength));
    }
    fs.writeFileSync(out, Buffer.concat(parts));
}

main().catch((e) => {
    console.error(`onnx_run: ${e.message}`);
    process.exit(1);
});
