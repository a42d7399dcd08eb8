//! The window's title says who it is ("netgame — Player-2 #7 (2/3)"), and
//! `demo` windows size and place themselves as tiles of the primary monitor,
//! so N windows fit the screen whatever its size.

use bevy::prelude::*;
use bevy::window::{Monitor, PrimaryMonitor, PrimaryWindow, WindowPosition};

use crate::ClientSettings;
use crate::net::ConnectionEvent;

/// Tiles keep this 4:3-ish aspect when choosing rows and columns.
const TILE_ASPECT: f32 = 4.0 / 3.0;
/// Room left per tile for the window manager's title bar and borders, logical px.
const DECORATION_PX: (f32, f32) = (8.0, 36.0);
/// If no monitor is reported within this long, keep the default size.
const MONITOR_WAIT_SECS: f64 = 3.0;

/// Which tile of how many this window is (1-based), if tiled.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTile {
    pub index: u32,
    pub count: u32,
}

pub struct WindowLayoutPlugin {
    pub tile: Option<WindowTile>,
}

impl Plugin for WindowLayoutPlugin {
    fn build(&self, app: &mut App) {
        if let Some(tile) = self.tile {
            app.insert_resource(tile)
                .add_systems(Update, place_window_tile);
        }
        app.add_systems(Update, title_says_who);
    }
}

/// Columns and rows for `count` tiles on a `screen` (logical px): the grid
/// whose tiles are largest at the 4:3 aspect.
pub fn grid_for(count: u32, screen: Vec2) -> (u32, u32) {
    let count = count.max(1);
    (1..=count)
        .map(|cols| (cols, count.div_ceil(cols)))
        .max_by(|a, b| {
            let size = |(cols, rows): (u32, u32)| {
                let (w, h) = (screen.x / cols as f32, screen.y / rows as f32);
                w.min(h * TILE_ASPECT)
            };
            size(*a).total_cmp(&size(*b))
        })
        .unwrap_or((1, 1))
}

/// Once the primary monitor is known: this window's size and place.
pub fn place_window_tile(
    tile: Res<WindowTile>,
    time: Res<Time<Real>>,
    monitors: Query<&Monitor, With<PrimaryMonitor>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
    mut done: Local<bool>,
) {
    if *done {
        return;
    }
    let (Ok(monitor), Ok(mut window)) = (monitors.single(), windows.single_mut()) else {
        if time.elapsed_secs_f64() > MONITOR_WAIT_SECS {
            warn!("no monitor reported: the window keeps its default size");
            *done = true;
        }
        return;
    };
    *done = true;
    let scale = monitor.scale_factor as f32;
    let screen = Vec2::new(
        monitor.physical_width as f32,
        monitor.physical_height as f32,
    ) / scale;
    let (cols, rows) = grid_for(tile.count, screen);
    let cell = Vec2::new(screen.x / cols as f32, screen.y / rows as f32);
    let i = tile.index - 1;
    let (col, row) = (i % cols, i / cols);
    let size = (cell - Vec2::new(DECORATION_PX.0, DECORATION_PX.1)).max(Vec2::splat(200.0));
    let origin = Vec2::new(col as f32 * cell.x, row as f32 * cell.y) * scale;
    window.resolution.set(size.x, size.y);
    window.position = WindowPosition::At(monitor.physical_position + origin.as_ivec2());
    info!(
        "window {} of {}: {:.0}x{:.0} at column {col}, row {row} of a {cols}x{rows} grid on a {:.0}x{:.0} monitor",
        tile.index, tile.count, size.x, size.y, screen.x, screen.y
    );
}

/// "netgame — Player-2 #7 (2/3)": who this window is, once welcomed.
pub fn title_says_who(
    mut events: MessageReader<ConnectionEvent>,
    settings: Res<ClientSettings>,
    tile: Option<Res<WindowTile>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    for event in events.read() {
        let ConnectionEvent::Welcome { id, .. } = event else {
            continue;
        };
        let Ok(mut window) = windows.single_mut() else {
            return;
        };
        let place = tile
            .as_ref()
            .map(|t| format!(" ({}/{})", t.index, t.count))
            .unwrap_or_default();
        window.title = format!("netgame — {} #{id}{place}", settings.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_as_large_as_the_monitor_allows() {
        assert_eq!(grid_for(3, Vec2::new(3840.0, 1080.0)), (3, 1));
        // On 1920x1080, 2x2 tiles (960x540) are larger than three 640 px strips.
        assert_eq!(grid_for(3, Vec2::new(1920.0, 1080.0)), (2, 2));
        assert_eq!(grid_for(4, Vec2::new(1920.0, 1080.0)), (2, 2));
        assert_eq!(grid_for(1, Vec2::new(1024.0, 768.0)), (1, 1));
    }
}
