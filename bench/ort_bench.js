// ort_bench.js ORT_DIR MODEL.onnx --batch N --threads T [--seconds S] [--latency N]
//               [--input FILE] [--api]
//
// Times ONNX Runtime's CPU kernels on a model the way 'convnet bench --infer
// --json' times convnet: random data (normal, held in memory) of the model's
// input shape at batch N, or with --input the images of FILE (float32, no
// header, image after image, as 'convnet bench --input' reads them: each
// call the next batch, from the first again when too few are left), a
// warm-up (a quarter of S, at most 0.5 s), then
// forward calls, one after the other, each timed alone, until S seconds have
// passed and at least max(3, --latency) calls were made.  Prints one JSON
// line: {"images_per_s", "latency_ms_p50", "latency_ms_p99", "calls",
// "seconds", "batch", "threads", "max_rss_mb", "ort", "call"}.
//
// The session: the CPU execution provider, intraOpNumThreads = T,
// interOpNumThreads = 1, sequential execution, every graph optimisation.
// Each call is the native session's run, synchronous ("call": "binding"),
// so that what is timed is ONNX Runtime and not Node's promise machinery
// around it; --api times `await session.run()` of the public API instead
// ("call": "session.run"), which adds Node's setImmediate and promise hop
// (some microseconds) to each call.  ORT_DIR holds
// node_modules/onnxruntime-node (scripts/ort-install.sh installs it there).
'use strict';
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
    const a = {seconds: 3, latency: 0, api: false, batch: 0, threads: 0, input: null};
    const pos = [];
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i];
        if (k === '--api')
            a.api = true;
        else if (k === '--input')
            a.input = argv[++i];
        else if (['--batch', '--threads', '--seconds', '--latency'].includes(k)) {
            const v = Number(argv[++i]);
            if (!(v > 0))
                throw new Error(`${k} takes a positive number, not '${argv[i]}'`);
            a[k.slice(2)] = v;
        } else if (k.startsWith('--'))
            throw new Error(`unknown option '${k}'`);
        else
            pos.push(k);
    }
    if (pos.length !== 2 || !a.batch || !a.threads)
        throw new Error('usage: ort_bench.js ORT_DIR MODEL.onnx --batch N --threads T ' +
                        '[--seconds S] [--latency N] [--input FILE] [--api]');
    [a.ortDir, a.model] = pos;
    return a;
}

// The pct-th percentile of the values, sorted in place: nearest rank, the
// median of an even count the mean of the middle two (as cli/bench.c).
function percentile(v, pct) {
    v.sort((x, y) => x - y);
    const n = v.length;
    if (pct === 50 && n % 2 === 0)
        return 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return v[Math.max(1, Math.ceil(pct * n / 100)) - 1];
}

// Normal random numbers (xorshift32 and Box-Muller), seeded: the same input
// in every run.
function normals(n) {
    let s = 1;
    const u = () => {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        return ((s >>> 0) + 1) / 4294967297;
    };
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++)
        x[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
    return x;
}

async function main() {
    const a = parseArgs(process.argv.slice(2));
    const pkg = path.join(a.ortDir, 'node_modules', 'onnxruntime-node');
    const ort = require(pkg);
    const options = {
        executionProviders: ['cpu'], intraOpNumThreads: a.threads, interOpNumThreads: 1,
        executionMode: 'sequential', graphOptimizationLevel: 'all',
    };
    const session = await ort.InferenceSession.create(a.model, options);
    const meta = session.inputMetadata[0];
    const dims = [a.batch, ...meta.shape.slice(1)];
    if (dims.some((d) => typeof d !== 'number'))
        throw new Error(`${a.model}: input shape [${meta.shape}] is not fixed past the batch`);
    const size = dims.reduce((p, d) => p * d, 1);
    // The feeds of each call in turn: one batch of random data, or every
    // whole batch of --input's images (made before timing, views of one array).
    const feedList = [];
    if (a.input) {
        const buf = fs.readFileSync(a.input);
        const all = new Float32Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / 4));
        if (buf.length % (4 * size / a.batch) !== 0 || all.length < size)
            throw new Error(`--input ${a.input}: ${buf.length} bytes are not a whole number of ` +
                            `images of ${size / a.batch} float32 values, at least ${a.batch}`);
        // Read once before timing, as convnet bench does: the first read of
        // each page the file was read into is slow (a few us a page).
        let sink = 0;
        for (let i = 0; i < all.length; i += 1024)
            sink += all[i];
        globalThis.inputTouched = sink; // kept, so that the loop is not dropped
        for (let o = 0; o + size <= all.length; o += size)
            feedList.push({[session.inputNames[0]]: new ort.Tensor('float32',
                                                                   all.subarray(o, o + size), dims)});
    } else {
        feedList.push({[session.inputNames[0]]: new ort.Tensor('float32', normals(size), dims)});
    }
    let next = 0;
    const feedsOf = () => {
        const f = feedList[next];
        next = next + 1 === feedList.length ? 0 : next + 1;
        return f;
    };
    let run;
    if (a.api) {
        run = () => session.run(feedsOf());
    } else {
        // The package's own native session, built as its backend builds it
        // (dist/backend.js), run synchronously.
        const {binding, initOrt} = require(path.join(pkg, 'dist', 'binding'));
        initOrt();
        const native = new binding.InferenceSession();
        native.loadModel(a.model, options);
        const fetches = {[session.outputNames[0]]: null};
        run = () => native.run(feedsOf(), fetches, {});
    }
    const now = () => Number(process.hrtime.bigint()) / 1e9;
    const warmUntil = now() + Math.min(a.seconds / 4, 0.5);
    do
        await run();
    while (now() < warmUntil);
    const times = [];
    const start = now();
    let prev = start, t = start;
    const minCalls = Math.max(3, a.latency);
    while (t - start < a.seconds || times.length < minCalls) {
        await run();
        t = now();
        times.push(t - prev);
        prev = t;
    }
    const elapsed = t - start, calls = times.length;
    console.log(JSON.stringify({
        images_per_s: calls * a.batch / elapsed,
        latency_ms_p50: 1e3 * percentile(times, 50),
        latency_ms_p99: 1e3 * percentile(times, 99),
        calls, seconds: elapsed, batch: a.batch, threads: a.threads,
        max_rss_mb: process.resourceUsage().maxRSS / 1024,
        ort: require(path.join(pkg, 'package.json')).version,
        call: a.api ? 'session.run' : 'binding',
    }));
}

main().catch((e) => {
    console.error(`ort_bench: ${e.message}`);
    process.exit(1);
});
