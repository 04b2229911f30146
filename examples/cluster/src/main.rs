//! `cluster sync …` (the client and sync worker, the HTTP front) or `cluster federation …` (one
//! federation worker); see the crate docs (`src/lib.rs`).
//!
//! ```sh
//! cluster federation --shard 0 --shards 2 --port 9001 --name 127.0.0.1:9000 --nats URL --pg URL --prefix demo
//! cluster federation --shard 1 --shards 2 --port 9002 --name 127.0.0.1:9000 --nats URL --pg URL --prefix demo
//! cluster sync --workers 127.0.0.1:9001,127.0.0.1:9002 --shards 2 --port 9000 --name 127.0.0.1:9000 --nats URL --pg URL --prefix demo
//! ```
//!
//! With `--exit-on-eof` a worker exits when its standard input closes (so a test's children
//! never outlive it).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("cluster: {e}");
        std::process::exit(2);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (kind, rest) = args.split_first().ok_or("usage: cluster sync|federation --flag value …")?;
    let flags = cluster::parse_flags(rest)?;
    let common = cluster::Common::from_flags(&flags)?;
    if flags.contains_key("exit-on-eof") {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match kind.as_str() {
        "sync" => {
            let workers: Vec<String> = flags
                .get("workers")
                .ok_or("--workers is required")?
                .split(',')
                .map(str::to_owned)
                .collect();
            if workers.len() != common.shards as usize {
                return Err("--workers must list one address per shard".into());
            }
            runtime.block_on(cluster::sync_worker::run(common, workers))
        }
        "federation" => {
            let shard = flags.get("shard").ok_or("--shard is required")?;
            let shard: u32 = shard.parse().map_err(|e| format!("--shard: {e}"))?;
            runtime.block_on(cluster::fed_worker::run(common, shard))
        }
        other => Err(format!("unknown component {other}: sync or federation")),
    }
}
