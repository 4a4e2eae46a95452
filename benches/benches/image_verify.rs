//! rhcos-images' one-pass verifier: sha256 of the gzip bytes + gunzip + sha256 of the raw bytes,
//! in memory, against gunzip alone (the floor) on the same 32 MiB mixed image.
//!
//! `cargo bench -p benches --bench image_verify`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rhcos_images::{Compression, Decode, Verifier};

/// 32 MiB, per 1 MiB block: zeros, PRNG noise, or text made of PRNG-chosen words, like the
/// image of benches/image-pipeline/run.sh (about 2:1 with gzip -6).
fn image() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: Vec<Vec<u8>> = (0..4096)
        .map(|_| {
            let len = 2 + next() % 8;
            (0..len).map(|_| b'a' + (next() % 26) as u8).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(32 << 20);
    for block in 0..32 {
        let end = out.len() + (1 << 20);
        match block % 4 {
            0 => out.resize(end, 0),
            1 => out.extend((0..1 << 20).map(|_| next() as u8)),
            _ => {
                while out.len() < end {
                    out.extend_from_slice(&words[(next() % 4096) as usize]);
                    out.push(if next() % 12 == 0 { b'\n' } else { b' ' });
                }
                out.truncate(end);
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let raw = image();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&raw).expect("in-memory gzip");
    let gz = e.finish().expect("in-memory gzip");

    let mut g = c.benchmark_group("image_verify");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.sample_size(10);
    g.bench_function("gunzip_only", |b| {
        b.iter(|| {
            let mut d = flate2::write::MultiGzDecoder::new(std::io::sink());
            d.write_all(&gz).expect("valid gzip");
            d.finish().expect("valid gzip");
        })
    });
    g.bench_function("verifier_sha256_gunzip_sha256", |b| {
        b.iter(|| {
            let mut v = Verifier::new(std::io::sink(), Decode::With(Compression::Gzip));
            for chunk in gz.chunks(256 * 1024) {
                v.update(chunk).expect("valid gzip");
            }
            v.finish().expect("valid gzip")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
