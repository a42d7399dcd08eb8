//! End to end: a real server in this process (every port 0), the real
//! `game_client` binary, and the Python legacy positions client.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, Image, ImageSampler, ImageType};
use bevy::prelude::*;
use game_client::embedded_server::EmbeddedServer;

/// Hard bound for any child process in these tests.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Finished {
    success: bool,
    output: String,
}

/// Runs `child` to completion (killed after `CHILD_TIMEOUT`), stdout + stderr.
fn finish(mut child: Child) -> Finished {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let output = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    Finished {
        success: status.is_some_and(|s| s.success()),
        output,
    }
}

fn client_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_game_client"));
    command
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn python_positions_client(port: u16, duration_secs: f64) -> Child {
    Command::new("python3")
        .arg(workspace_root().join("clients/python/positions_client.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--start", "40", "-20", "--interval", "0.2"])
        .args(["--duration", &duration_secs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

/// The number after `key=` in the first line containing `prefix`.
fn find_id(output: &str, prefix: &str) -> Option<i32> {
    let start = output.find(prefix)? + prefix.len();
    let digits: String = output[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[test]
fn a_headless_bot_and_a_python_client_see_each_other() {
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let game = server.addrs.game;
    let positions = server.addrs.positions;

    let bot = client_command()
        .args(["--headless", "--bot", "--name", "e2e-bot"])
        .args(["--connect", &game.to_string(), "--exit-after", "8"])
        .spawn()
        .expect("client starts");
    // Give the bot a moment to connect so the walker is in its world either
    // way (as a JOIN or in the snapshot) — both paths are logged.
    std::thread::sleep(Duration::from_millis(500));
    let walker = python_positions_client(positions.port(), 6.0);

    let walker = finish(walker);
    let bot = finish(bot);
    server.stop();

    assert!(bot.success, "client failed:\n{}", bot.output);
    assert!(walker.success, "python client failed:\n{}", walker.output);
    let bot_id = find_id(&bot.output, "welcome id=")
        .unwrap_or_else(|| panic!("no welcome in the client log:\n{}", bot.output));
    let walker_id = find_id(&walker.output, "connected id=")
        .unwrap_or_else(|| panic!("python client never connected:\n{}", walker.output));

    // The Python client saw the bot walk.
    let bot_moves = walker
        .output
        .lines()
        .filter(|l| l.starts_with(&format!("MOVE id={bot_id} ")))
        .count();
    assert!(
        bot_moves >= 3,
        "python client saw {bot_moves} MOVEs of bot {bot_id}:\n{}",
        walker.output
    );
    // The bot saw the Python player, as a legacy player.
    let seen = bot.output.lines().any(|l| {
        (l.contains(&format!("player joined id={walker_id} "))
            || l.contains(&format!("player seen id={walker_id} ")))
            && l.contains("kind=legacy")
    });
    assert!(
        seen,
        "client never saw python player {walker_id}:\n{}",
        bot.output
    );
    assert!(
        bot.output.contains(&format!("player left id={walker_id}")),
        "client never saw python player {walker_id} leave:\n{}",
        bot.output
    );
}

#[test]
fn a_headless_client_retries_until_the_server_appears() {
    // Reserve a free port, then release it: nothing listens there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client_command()
        .args(["--headless", "--bot", "--name", "patient"])
        .args([
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--exit-after",
            "5",
        ])
        .spawn()
        .expect("client starts");
    std::thread::sleep(Duration::from_millis(1500));
    let server = EmbeddedServer::start(server::Config {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        game_port: port,
        test_port: 0,
        math_port: 0,
        positions_port: 0,
        ..server::Config::default()
    })
    .expect("server binds the freed port");
    let client = finish(client);
    server.stop();
    assert!(client.success, "client failed:\n{}", client.output);
    assert!(
        client.output.contains("disconnected: cannot connect"),
        "first attempts fail visibly:\n{}",
        client.output
    );
    assert!(
        client.output.contains("welcome id="),
        "then it connects:\n{}",
        client.output
    );
}

fn xvfb_run_available() -> bool {
    Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_window_under_xvfb_saves_a_screenshot_that_is_not_blank() {
    if !xvfb_run_available() {
        if std::env::var_os("CI").is_some() {
            panic!("xvfb-run is required in CI (apt-get install xvfb xauth mesa-vulkan-drivers)");
        }
        eprintln!("notice: xvfb-run not found, skipping the window smoke test");
        return;
    }
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let walker = python_positions_client(server.addrs.positions.port(), 6.0);
    let shot = std::env::temp_dir().join(format!("game_client_smoke_{}.png", std::process::id()));
    let _ = std::fs::remove_file(&shot);

    let mut command = Command::new("xvfb-run");
    command
        .args(["-a", "-s", "-screen 0 1024x768x24"])
        .arg(env!("CARGO_BIN_EXE_game_client"))
        .args(["--bot", "--name", "xvfb"])
        .args(["--connect", &server.addrs.game.to_string()])
        .arg("--screenshot")
        .arg(&shot)
        .args(["--exit-after", "6"])
        .env("WGPU_BACKEND", "vulkan")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let client = finish(command.spawn().expect("xvfb-run starts"));
    let _ = finish(walker);
    server.stop();
    assert!(client.success, "windowed client failed:\n{}", client.output);

    let bytes = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}\n{}",
            shot.display(),
            client.output
        )
    });
    // Decoded with Bevy's own PNG support (a separate `png` dev-dependency
    // would change feature unification and rebuild half of Bevy for tests).
    let image = Image::from_buffer(
        &bytes,
        ImageType::Extension("png"),
        CompressedImageFormats::NONE,
        true,
        ImageSampler::Default,
        RenderAssetUsages::default(),
    )
    .expect("a PNG");
    let size = image.size();
    assert!(size.x >= 400 && size.y >= 300, "{size}");
    let mut colors = std::collections::HashSet::new();
    for y in 0..size.y {
        for x in (0..size.x).step_by(3) {
            if let Ok(color) = image.get_color_at(x, y) {
                colors.insert(color.to_srgba().to_u8_array());
            }
        }
        if colors.len() > 50 {
            break;
        }
    }
    let _ = std::fs::remove_file(&shot);
    assert!(
        colors.len() > 50,
        "the screenshot is (nearly) blank: {} colours",
        colors.len()
    );
}
