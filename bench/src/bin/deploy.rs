//! How fast a deploy goes live, and how fast the host starts with many apps.
//!
//! 1. Deploy-to-live: for each example component, PUT it as the new version
//!    of a serving app; measure the upload request (validate + compile +
//!    durable store + activate) and the time from its answer to the first
//!    reply from the new version.
//! 2. Start-up with 20 deployed apps (distinct components): cold compile
//!    cache vs warm.

use std::time::Instant;

use ivr_bench::{Host, artifact, first_contact, summary_ms, with_custom_section};

const ROUNDS: usize = 10;
const APPS: usize = 20;

fn main() -> anyhow::Result<()> {
    let components = [
        (
            "hello",
            std::fs::read(artifact("wasm32-wasip2/release/hello.wasm")?)?,
        ),
        (
            "bank-menu",
            std::fs::read(artifact("wasm32-wasip2/release/bank_menu.wasm")?)?,
        ),
    ];
    println!("ivr-host deploy benchmark ({ROUNDS} deploys per component, release build)\n");
    println!(
        "| component | size | upload → 201 (median / max) | 201 → first reply from it (median / max) |"
    );
    println!("| --- | ---: | ---: | ---: |");
    let dir = tempfile::tempdir()?;
    let host = Host::start(&dir.path().join("data"))?;
    let mut call = 0u64;
    for (name, bytes) in &components {
        let mut uploads = Vec::new();
        let mut to_first_reply = Vec::new();
        for round in 0..ROUNDS {
            // A distinct sha each round, so every deploy really compiles.
            let version = with_custom_section(bytes, &format!("{name}-{round}"));
            let started = Instant::now();
            let (status, json) = host.admin_call("PUT", "/apps/menu", Some(&version))?;
            anyhow::ensure!(status == 201, "deploy answered {status}: {json}");
            let acknowledged = Instant::now();
            uploads.push(acknowledged - started);
            loop {
                call += 1;
                let reply = host.vca(&first_contact(call))?;
                let from_new = match *name {
                    "hello" => {
                        reply["callflow"][0]["params"]["text"] == "Hello from ivr-host. Goodbye!"
                    }
                    _ => reply["clientActionId"] == "main-1",
                };
                if from_new {
                    break;
                }
            }
            to_first_reply.push(acknowledged.elapsed());
        }
        let (up_med, up_max) = summary_ms(&mut uploads);
        let (first_med, first_max) = summary_ms(&mut to_first_reply);
        println!(
            "| {name} | {} KiB | {up_med:.1} / {up_max:.1} ms | {first_med:.2} / {first_max:.2} ms |",
            bytes.len() / 1024
        );
    }
    drop(host);

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    {
        let host = Host::start(&data)?;
        for i in 0..APPS {
            let (_, bytes) = &components[i % components.len()];
            let (status, json) = host.admin_call(
                "PUT",
                &format!("/apps/app-{i}"),
                Some(&with_custom_section(bytes, &format!("app-{i}"))),
            )?;
            anyhow::ensure!(status == 201, "deploy answered {status}: {json}");
        }
    }
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..3 {
        std::fs::remove_dir_all(data.join("compiled"))?;
        cold.push(Host::start(&data)?.startup);
        warm.push(Host::start(&data)?.startup);
    }
    let (cold_med, _) = summary_ms(&mut cold);
    let (warm_med, _) = summary_ms(&mut warm);
    println!("\n| start-up with {APPS} deployed apps | time to ready (median of 3) |");
    println!("| --- | ---: |");
    println!("| cold compile cache | {cold_med:.0} ms |");
    println!("| warm compile cache | {warm_med:.0} ms |");
    println!(
        "| ratio cold / warm | {:.1}× |",
        cold_med / warm_med.max(0.001)
    );
    Ok(())
}
