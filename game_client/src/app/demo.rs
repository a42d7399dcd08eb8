//! `netgame demo --windows N`: one command, N players in N windows.
//!
//! The parent ensures a server (embedded if none answers on 127.0.0.1:7000),
//! starts N child processes of this same binary with `--connect`, a name and
//! `--wander-unfocused`, and waits. When every window is closed, or on
//! Ctrl-C, it kills the remaining children and stops its server.

use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::app::cli::DemoArgs;
use crate::app::embedded_server::{EmbeddedServer, default_game_addr, server_answers};

/// How often the parent checks its children and Ctrl-C.
const POLL_PERIOD: Duration = Duration::from_millis(200);

pub fn run_demo(args: &DemoArgs) -> ExitCode {
    let (target, server) = match &args.connect {
        Some(target) => (target.clone(), None),
        None => {
            let addr = default_game_addr();
            if server_answers(addr) {
                println!("demo: joining the server on {addr}");
                (addr.to_string(), None)
            } else {
                match EmbeddedServer::start_default() {
                    Ok(server) => {
                        let a = &server.addrs;
                        println!(
                            "demo: started a server in-process (game {}, test {}, math {}, positions {})",
                            a.game, a.test, a.math, a.positions
                        );
                        (a.game.to_string(), Some(server))
                    }
                    Err(e) => {
                        eprintln!("demo: no server on {addr} and cannot start one: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("demo: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let _signal_runtime = watch_ctrl_c(interrupted.clone());

    let mut children: Vec<Child> = Vec::new();
    for i in 0..args.windows {
        // Each window sizes itself as tile i of N of its monitor.
        let tile = format!("{}/{}", i + 1, args.windows);
        let name = format!("Player-{}", i + 1);
        let spawned = Command::new(&exe)
            .args(["--connect", &target, "--name", &name, "--wander-unfocused"])
            .args(["--tile", &tile])
            .args(demo_passthrough(args, i + 1))
            .spawn();
        match spawned {
            Ok(child) => {
                println!("demo: started {name} (pid {})", child.id());
                children.push(child);
            }
            Err(e) => eprintln!("demo: cannot start {name}: {e}"),
        }
    }
    println!("demo: {target} — close the windows or press Ctrl-C to stop");
    loop {
        children.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
        if children.is_empty() || interrupted.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(POLL_PERIOD);
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(server) = server {
        println!("demo: stopping the server");
        server.stop();
    }
    ExitCode::SUCCESS
}

/// Flags every window gets from the demo's own command line.
fn demo_passthrough(args: &DemoArgs, window: u32) -> Vec<String> {
    let mut flags = Vec::new();
    for (flag, value) in [("--lag-ms", args.lag_ms), ("--jitter-ms", args.jitter_ms)] {
        if value > 0 {
            flags.extend([flag.to_owned(), value.to_string()]);
        }
    }
    if args.loss > 0.0 {
        flags.extend(["--loss".to_owned(), args.loss.to_string()]);
    }
    if let Some(secs) = args.exit_after {
        flags.extend(["--exit-after".to_owned(), secs.to_string()]);
    }
    if let Some(dir) = &args.screenshot_dir {
        let file = dir.join(format!("demo-window-{window}.png"));
        flags.extend(["--screenshot".to_owned(), file.display().to_string()]);
    }
    flags
}

/// Sets `flag` on Ctrl-C; the runtime must live as long as the watch.
fn watch_ctrl_c(flag: Arc<AtomicBool>) -> Option<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .ok()?;
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    Some(runtime)
}
