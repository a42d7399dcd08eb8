//! End to end: a real server in this process (every port 0), the real
//! `netgame` binary, and the Python legacy positions client.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, Image, ImageSampler, ImageType};
use bevy::prelude::*;
use game_client::app::embedded_server::EmbeddedServer;

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

/// A child whose stderr we watch line by line while it runs (the client logs
/// there), so tests wait on what it says instead of sleeping.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    fn spawn(mut command: Command) -> Watched {
        let mut child = command.spawn().expect("child starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Blocks until a line contains `needle` (panics after `CHILD_TIMEOUT`).
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?}; the child said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the exit; stdout and every stderr line.
    fn finish(mut self) -> Finished {
        let stdout = self.child.stdout.take();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut stdout) = stdout {
                let _ = stdout.read_to_string(&mut s);
            }
            s
        });
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    // Keep collecting while it runs.
                    if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                        self.seen.push(line);
                    }
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        self.seen.extend(self.lines.iter());
        Finished {
            success: status.is_some_and(|s| s.success()),
            output: format!("{}{}", out.join().unwrap_or_default(), self.seen.join("\n")),
        }
    }
}

fn client_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_netgame"));
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

    let mut command = client_command();
    command
        .args(["--headless", "--bot", "--name", "e2e-bot"])
        .args(["--connect", &game.to_string(), "--exit-after", "8"]);
    let mut bot = Watched::spawn(command);
    bot.wait_for_line("welcome id=");
    let walker = python_positions_client(positions.port(), 6.0);
    // The status line counts the walker once the bot has seen it.
    let status = bot.wait_for_line("status players=2 ");
    assert!(
        status.contains("rtt_ms=") && status.contains("interp_ms="),
        "{status}"
    );

    let walker = finish(walker);
    let bot = bot.finish();
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
    let mut command = client_command();
    command
        .args(["--headless", "--bot", "--name", "patient"])
        .args([
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--exit-after",
            "5",
        ]);
    let mut client = Watched::spawn(command);
    client.wait_for_line("disconnected: cannot connect");
    let server = EmbeddedServer::start(server::Config {
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        game_port: port,
        test_port: 0,
        math_port: 0,
        positions_port: 0,
        ..server::Config::default()
    })
    .expect("server binds the freed port");
    let client = client.finish();
    server.stop();
    assert!(client.success, "client failed:\n{}", client.output);
    assert!(
        client.output.contains("welcome id="),
        "then it connects:\n{}",
        client.output
    );
}

/// The one rule for a test that needs a tool the machine may lack (as in
/// the server's tests): with `CI` set to anything non-empty, a missing tool
/// fails the test; elsewhere the test is skipped, and says so on the
/// terminal itself (libtest captures `eprintln!`, not a write to `stderr`).
fn skip_unless_ci(test: &str, tool: &str, install: &str) {
    if std::env::var_os("CI").is_some_and(|ci| !ci.is_empty()) {
        panic!("CI is set but {tool} is missing, so {test} cannot run: {install}");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {tool} not found ({install}; with CI set it fails instead) ***\n"
    );
}

fn xvfb_run_available() -> bool {
    Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python player that stands still at (x, y), for `secs` seconds.
fn python_player_at(port: u16, x: i16, y: i16, secs: f64) -> Child {
    Command::new("python3")
        .arg(workspace_root().join("clients/python/positions_client.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--start", &x.to_string(), &y.to_string(), "--no-move"])
        .args(["--duration", &secs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

/// The legacy tint as the screenshot stores it.
const LEGACY_RGB: [u8; 3] = [255, 191, 77];
/// Per-channel tolerance when matching it (sprite shading, blending).
const COLOR_TOLERANCE: i32 = 30;

/// How many pixels in `[x0, x1) × [y0, y1)` have the legacy colour.
fn legacy_pixels(image: &Image, (x0, x1): (u32, u32), (y0, y1): (u32, u32)) -> usize {
    let mut count = 0;
    for y in y0..y1.min(image.size().y) {
        for x in x0..x1.min(image.size().x) {
            let Ok(color) = image.get_color_at(x, y) else {
                continue;
            };
            let [r, g, b, _] = color.to_srgba().to_u8_array();
            let close = [r, g, b]
                .iter()
                .zip(LEGACY_RGB)
                .all(|(&c, want)| (i32::from(c) - i32::from(want)).abs() <= COLOR_TOLERANCE);
            count += usize::from(close);
        }
    }
    count
}

#[test]
fn a_window_under_xvfb_shows_near_and_far_players_where_they_are() {
    if !xvfb_run_available() {
        skip_unless_ci(
            "the window test",
            "xvfb-run",
            "apt-get install xvfb xauth mesa-vulkan-drivers",
        );
        return;
    }
    let server = EmbeddedServer::start_ephemeral().expect("server binds");
    let port = server.addrs.positions.port();
    // Near: on screen at (10, 10) units = 40 px right and up of the centre.
    let near = python_player_at(port, 10, 10, 20.0);
    // Far: 400 units to the right, far outside the 800 px wide view.
    let far = python_player_at(port, 400, 0, 20.0);
    // Very far: outside the area of interest the window asks for (500
    // units around the view), so only the overview places it.
    let very_far = python_player_at(port, 3000, 3000, 20.0);
    let shot = std::env::temp_dir().join(format!("game_client_smoke_{}.png", std::process::id()));
    let _ = std::fs::remove_file(&shot);

    let mut command = Command::new("xvfb-run");
    command
        .args(["-a", "-s", "-screen 0 1024x768x24"])
        .arg(env!("CARGO_BIN_EXE_netgame"))
        // Spectating, the camera stays on the origin: known pixel positions.
        .args(["--spectate", "--name", "xvfb"])
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
    for mut python in [near, far, very_far] {
        let _ = python.kill();
        let _ = python.wait();
    }
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
    assert_eq!(size, UVec2::new(800, 600), "the window's size");
    let keep = std::env::var_os("KEEP_SCREENSHOT").is_some();
    if !keep {
        let _ = std::fs::remove_file(&shot);
    }
    let center = size / 2;
    // The near player's sprite, 40 px right of and above the centre.
    let sprite = legacy_pixels(
        &image,
        (center.x + 40 - 12, center.x + 40 + 12),
        (center.y - 40 - 12, center.y - 40 + 12),
    );
    assert!(
        sprite >= 20,
        "near legacy sprite: {sprite} orange pixels\n{}",
        client.output
    );
    // The far player's indicator chip at the right edge, level with the centre.
    let chip = legacy_pixels(
        &image,
        (size.x - 200, size.x),
        (center.y - 30, center.y + 30),
    );
    assert!(chip >= 40, "far player's indicator: {chip} orange pixels");
    // All three as minimap dots in the bottom-right corner (180 px + 10 px
    // margin); the map fits everyone, so the very far one is alone in its
    // top-right corner (the top quarter of its right quarter: the player at
    // (400, 0) is level with the view, half-way down the map).
    let minimap = legacy_pixels(
        &image,
        (size.x - 190, size.x - 10),
        (size.y - 190, size.y - 10),
    );
    assert!(minimap >= 12, "minimap dots: {minimap} orange pixels");
    let very_far_dot = legacy_pixels(
        &image,
        (size.x - 55, size.x - 10),
        (size.y - 190, size.y - 145),
    );
    assert!(
        very_far_dot >= 6,
        "the player at (3000, 3000) on the minimap: {very_far_dot} orange pixels\n{}",
        client.output
    );

    // And nowhere else far from those: the top-left quarter is HUD and ground.
    let elsewhere = legacy_pixels(&image, (0, center.x - 100), (center.y + 60, size.y));
    assert!(
        elsewhere < 10,
        "legacy colour where no player is: {elsewhere}"
    );
}
