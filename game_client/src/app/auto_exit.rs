//! `--exit-after SECS` and `--screenshot FILE`: leave on a timer, saving a PNG
//! of the window shortly before (for docs, smoke tests and CI).

use std::path::PathBuf;

use bevy::prelude::*;

/// The screenshot is requested this long before the exit time, seconds, so
/// the asynchronous capture has frames to complete in.
pub const SCREENSHOT_LEAD_SECS: f64 = 1.5;
/// Without `--exit-after`, the screenshot is taken this long after start.
pub const SCREENSHOT_DEFAULT_AT_SECS: f64 = 3.0;
/// If the capture has not landed by this long after the exit time, exit anyway.
pub const SCREENSHOT_GRACE_SECS: f64 = 10.0;

/// When to leave and what to capture.
#[derive(Resource, Debug, Clone, Default)]
pub struct AutoExit {
    pub exit_after_secs: Option<f64>,
    pub screenshot: Option<PathBuf>,
    screenshot_requested: bool,
    screenshot_saved: bool,
}

pub struct AutoExitPlugin {
    pub exit_after_secs: Option<f64>,
    pub screenshot: Option<PathBuf>,
}

impl Plugin for AutoExitPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(AutoExit {
            exit_after_secs: self.exit_after_secs,
            screenshot: self.screenshot.clone(),
            ..default()
        })
        .add_systems(Update, (take_screenshot_on_time, exit_on_time));
    }
}

fn screenshot_time(auto: &AutoExit) -> f64 {
    match auto.exit_after_secs {
        Some(exit) => (exit - SCREENSHOT_LEAD_SECS).max(0.5),
        None => SCREENSHOT_DEFAULT_AT_SECS,
    }
}

pub fn take_screenshot_on_time(
    mut commands: Commands,
    mut auto: ResMut<AutoExit>,
    time: Res<Time<Real>>,
) {
    let Some(path) = auto.screenshot.clone() else {
        return;
    };
    if auto.screenshot_requested || time.elapsed_secs_f64() < screenshot_time(&auto) {
        return;
    }
    auto.screenshot_requested = true;
    info!("taking a screenshot to {}", path.display());
    commands
        .spawn(bevy::render::view::screenshot::Screenshot::primary_window())
        .observe(bevy::render::view::screenshot::save_to_disk(path))
        .observe(
            |_: On<bevy::render::view::screenshot::ScreenshotCaptured>,
             mut auto: ResMut<AutoExit>| {
                auto.screenshot_saved = true;
            },
        );
}

pub fn exit_on_time(auto: Res<AutoExit>, time: Res<Time<Real>>, mut exits: MessageWriter<AppExit>) {
    let Some(exit_after) = auto.exit_after_secs else {
        return;
    };
    let now = time.elapsed_secs_f64();
    if now < exit_after {
        return;
    }
    let waiting_for_screenshot = auto.screenshot.is_some() && !auto.screenshot_saved;
    if waiting_for_screenshot && now < exit_after + SCREENSHOT_GRACE_SECS {
        return;
    }
    if waiting_for_screenshot {
        warn!("the screenshot was not captured in time");
    }
    info!("exiting after {exit_after} s");
    exits.write(AppExit::Success);
}
