//! The replay window's timeline: a bar along the bottom with the
//! recording's clock, and the keys that steer the [`ReplayClock`]:
//! `Space` pause, `[`/`]` speed ×½/×2 (0.25 to 16), `←`/`→` ∓10 s, a click
//! on the bar jumps there.
//!
//! `←`/`→` also pan a spectator's camera; while replaying they seek
//! instead: the keys are taken out of the input before the camera reads
//! them, so no file of the camera changes for the replay.

use bevy::input::InputSystems;
use bevy::prelude::*;
use bevy::ui::RelativeCursorPosition;

use super::feed::{ReplayClock, ReplaySystems};

/// How far `←`/`→` jump, ms.
pub const SEEK_STEP_MS: i64 = 10_000;
/// The bar's height and its distance from the window's edges, pixels. It
/// sits top right, clear of the HUD (top left), the math panel (bottom
/// left) and the minimap (bottom right).
const BAR_HEIGHT_PX: f32 = 42.0;
const BAR_MARGIN_PX: f32 = 10.0;
const FONT_PX: f32 = 14.0;
const HINT_FONT_PX: f32 = 12.0;
/// What the keys do, under the clock (ASCII: the UI font has no arrows).
const HINT: &str = "Space pause  [ ] speed  <- -> 10 s  click: jump";

/// The whole bar (clicks land here).
#[derive(Component, Debug)]
pub struct TimelineBar;

/// The part of the bar already played.
#[derive(Component, Debug)]
pub struct TimelineFill;

/// The clock text on the bar.
#[derive(Component, Debug)]
pub struct TimelineText;

/// The key hint under the clock.
#[derive(Component, Debug)]
struct TimelineHint;

pub struct TimelinePlugin;

impl Plugin for TimelinePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_timeline)
            .add_systems(PreUpdate, steer_with_keys.after(InputSystems))
            .add_systems(
                Update,
                (
                    seek_on_click.before(ReplaySystems),
                    show_timeline.after(ReplaySystems),
                ),
            );
    }
}

fn spawn_timeline(mut commands: Commands) {
    commands
        .spawn((
            TimelineBar,
            Node {
                position_type: PositionType::Absolute,
                left: Val::Percent(50.0),
                right: Val::Px(BAR_MARGIN_PX),
                top: Val::Px(BAR_MARGIN_PX),
                height: Val::Px(BAR_HEIGHT_PX),
                flex_direction: FlexDirection::Column,
                justify_content: JustifyContent::Center,
                padding: UiRect::horizontal(Val::Px(8.0)),
                ..default()
            },
            BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.6)),
            Interaction::default(),
            RelativeCursorPosition::default(),
        ))
        .with_children(|bar| {
            bar.spawn((
                TimelineFill,
                Node {
                    position_type: PositionType::Absolute,
                    left: Val::Px(0.0),
                    top: Val::Px(0.0),
                    bottom: Val::Px(0.0),
                    width: Val::Percent(0.0),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.3, 0.6, 1.0, 0.5)),
            ));
            bar.spawn((
                TimelineText,
                Text::new(""),
                TextFont::from_font_size(FONT_PX),
                TextColor(Color::WHITE),
            ));
            bar.spawn((
                TimelineHint,
                Text::new(HINT),
                TextFont::from_font_size(HINT_FONT_PX),
                TextColor(Color::srgb(0.7, 0.75, 0.8)),
            ));
        });
}

/// `Space`, `[`, `]`, `←`, `→`.
fn steer_with_keys(mut keys: ResMut<ButtonInput<KeyCode>>, mut clock: ResMut<ReplayClock>) {
    if keys.just_pressed(KeyCode::Space) {
        clock.paused = !clock.paused;
        if !clock.paused && clock.now_ms >= clock.duration_ms {
            clock.seek_to = Some(0);
        }
    }
    if keys.just_pressed(KeyCode::BracketLeft) {
        clock.scale_speed(0.5);
    }
    if keys.just_pressed(KeyCode::BracketRight) {
        clock.scale_speed(2.0);
    }
    if keys.just_pressed(KeyCode::ArrowLeft) {
        clock.seek_by(-SEEK_STEP_MS);
    }
    if keys.just_pressed(KeyCode::ArrowRight) {
        clock.seek_by(SEEK_STEP_MS);
    }
    keys.reset(KeyCode::ArrowLeft);
    keys.reset(KeyCode::ArrowRight);
}

/// The bar, when its interaction changed.
type BarTouched = (With<TimelineBar>, Changed<Interaction>);

/// A press on the bar jumps to that point of the recording.
fn seek_on_click(
    bar: Query<(&Interaction, &RelativeCursorPosition), BarTouched>,
    mut clock: ResMut<ReplayClock>,
) {
    for (interaction, cursor) in &bar {
        if *interaction == Interaction::Pressed
            && let Some(at) = cursor.normalized
        {
            // `normalized` is 0 at the centre, ±0.5 at the edges.
            let fraction = (f64::from(at.x) + 0.5).clamp(0.0, 1.0);
            clock.seek_to = Some((fraction * clock.duration_ms as f64) as u64);
        }
    }
}

fn show_timeline(
    clock: Res<ReplayClock>,
    mut fill: Query<&mut Node, With<TimelineFill>>,
    mut text: Query<&mut Text, With<TimelineText>>,
) {
    if !clock.is_changed() {
        return;
    }
    let fraction = if clock.duration_ms == 0 {
        1.0
    } else {
        clock.now_ms as f32 / clock.duration_ms as f32
    };
    for mut node in &mut fill {
        node.width = Val::Percent(100.0 * fraction);
    }
    for mut text in &mut text {
        text.0 = timeline_text(&clock);
    }
}

/// The clock as the bar shows it: state, time / length, speed, and the
/// wall-clock time (UTC, without the date, to fit) of what is shown.
pub fn timeline_text(clock: &ReplayClock) -> String {
    let state = if clock.paused { "paused" } else { "playing" };
    format!(
        "{state} {} / {}  x{}  {}",
        clock_text(clock.now_ms),
        clock_text(clock.duration_ms),
        clock.speed,
        &utc_text(clock.start_unix_ms + clock.now_ms)["YYYY-MM-DD ".len()..],
    )
}

/// `m:ss.t` (or `h:mm:ss.t`).
pub fn clock_text(ms: u64) -> String {
    let tenths = ms / 100 % 10;
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{tenths}")
    } else {
        format!("{m}:{s:02}.{tenths}")
    }
}

/// `YYYY-MM-DD hh:mm:ss UTC` from ms since the Unix epoch.
pub fn utc_text(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, day_secs) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_utc_texts() {
        assert_eq!(clock_text(0), "0:00.0");
        assert_eq!(clock_text(75_250), "1:15.2");
        assert_eq!(clock_text(3_725_900), "1:02:05.9");
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(1_765_000_000_000), "2025-12-06 05:46:40 UTC");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
