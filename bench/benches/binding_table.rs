//! Read throughput of the binding table (snapshot reads) with 2 reader threads while 1
//! writer logs users in and out, against `Mutex<HashMap>` and `RwLock<HashMap>` doing the
//! same reads under the same writer. One iteration is one read on each reader thread.
//! Writers: paced (the same write rate for every table), busy (back to back), none.
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deviceuser_bench::contention::{
    timed_reads, Locked, Read, ReadWrite, Snapshots, Table, Writer,
};

const READERS: usize = 2;

fn group<T: Table>(c: &mut Criterion, id: &str, table: Arc<T>) {
    for (read, read_name) in [(Read::DialOf, "dial_of"), (Read::UserOn, "user_on")] {
        for writer in [Writer::Paced, Writer::Busy, Writer::None] {
            let name = format!("{read_name}/{}", writer.name());
            let mut g = c.benchmark_group(name);
            g.throughput(Throughput::Elements(READERS as u64));
            g.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_custom(|iters| timed_reads(&table, read, READERS, iters, writer))
            });
            g.finish();
        }
    }
}

fn binding_table(c: &mut Criterion) {
    group(c, "snapshot", Arc::new(Snapshots::new()));
    group(c, "mutex", Arc::new(Locked::new()));
    group(c, "rwlock", Arc::new(ReadWrite::new()));
}

criterion_group!(benches, binding_table);
criterion_main!(benches);
