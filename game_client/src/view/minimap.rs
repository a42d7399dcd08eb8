//! The minimap: a corner map of everyone (legacy orange, native blue, you
//! green) with the current view as a white rectangle. Spectating, a click or
//! drag on it moves the camera there.
//!
//! Players out of the server's view of us are drawn from the overview
//! (protocol 3) while their sample is fresh; in a world too big for the
//! overview to list, its density grid is drawn underneath as a heat map.
//!
//! It is a small CPU-drawn image, redrawn a few times a second: the cost is
//! one pass over the players and a 180×180 upload, whatever the crowd size.

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::window::PrimaryWindow;
use shared::native::{DensityGrid, PlayerKind};

pub use super::camera::PointerOverMinimap;
use super::camera::{CameraSystems, MainCamera, projection_scale, visible_rect};
use crate::logic::overview::{DensityMap, shown};
use crate::logic::players::{
    Kind, LOCAL_TINT, LatestPosition, LocalPlayer, OutOfView, PIXELS_PER_UNIT, RemotePlayer,
    kind_tint,
};
use crate::{ClientSettings, ControlMode};

/// Side of the minimap, logical pixels (and texels).
pub const MINIMAP_PX: u32 = 180;
/// Distance from the window's bottom-right corner, pixels.
pub const MINIMAP_MARGIN_PX: f32 = 10.0;
/// Redraws per second.
pub const MINIMAP_REDRAW_PERIOD_SECS: f64 = 0.1;
/// The map shows at least this far around its centre, world units.
pub const MIN_HALF_EXTENT_UNITS: f32 = 100.0;
/// Room around the farthest player, as a fraction of the extent.
const EXTENT_MARGIN: f32 = 0.1;
const BACKGROUND: [u8; 4] = [16, 20, 26, 215];
const VIEW_RECT: [u8; 4] = [255, 255, 255, 255];
/// A dot is this many texels wide (the local player's one more).
const DOT_TEXELS: i32 = 4;
/// The heat map's colour at the densest cell (alpha scales with density).
const HEAT: [u8; 3] = [230, 70, 60];
/// The faintest heat-map cell that holds anyone, alpha out of 255.
const HEAT_MIN_ALPHA: f32 = 60.0;

/// The minimap's texture.
#[derive(Resource, Debug, Clone)]
pub struct MinimapImage(pub Handle<Image>);

/// What the minimap shows: a square of the world (units).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq)]
pub struct MinimapExtent {
    pub center: Vec2,
    pub half: f32,
}

impl MinimapExtent {
    /// World units → texel (origin top-left).
    pub fn to_texel(&self, units: Vec2) -> IVec2 {
        let unit = (units - self.center) / (2.0 * self.half) + Vec2::splat(0.5);
        let texel = Vec2::new(unit.x, 1.0 - unit.y) * MINIMAP_PX as f32;
        texel.floor().as_ivec2()
    }

    /// A point on the minimap (0..1 from its top-left) → world units.
    pub fn to_units(&self, normalized: Vec2) -> Vec2 {
        let unit = Vec2::new(normalized.x, 1.0 - normalized.y) - Vec2::splat(0.5);
        self.center + unit * 2.0 * self.half
    }
}

#[derive(Component, Debug, Default)]
pub struct Minimap;

pub struct MinimapPlugin;

impl Plugin for MinimapPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<MinimapExtent>()
            .init_resource::<PointerOverMinimap>()
            .add_systems(Startup, spawn_minimap)
            .add_systems(Update, click_minimap)
            .add_systems(PostUpdate, draw_minimap.after(CameraSystems));
    }
}

fn spawn_minimap(mut commands: Commands, mut images: ResMut<Assets<Image>>) {
    let image = Image::new_fill(
        Extent3d {
            width: MINIMAP_PX,
            height: MINIMAP_PX,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &BACKGROUND,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    let handle = images.add(image);
    commands.insert_resource(MinimapImage(handle.clone()));
    commands.spawn((
        Minimap,
        ImageNode::new(handle),
        Node {
            position_type: PositionType::Absolute,
            right: Val::Px(MINIMAP_MARGIN_PX),
            bottom: Val::Px(MINIMAP_MARGIN_PX),
            width: Val::Px(MINIMAP_PX as f32),
            height: Val::Px(MINIMAP_PX as f32),
            border: UiRect::all(Val::Px(1.0)),
            ..default()
        },
        BorderColor::all(Color::srgba(1.0, 1.0, 1.0, 0.5)),
    ));
}

/// The pointer's position on the minimap, 0..1 from its top-left, if over it.
fn pointer_on_minimap(window: &Window) -> Option<Vec2> {
    let cursor = window.cursor_position()?;
    let size = MINIMAP_PX as f32;
    let origin = Vec2::new(
        window.width() - MINIMAP_MARGIN_PX - size,
        window.height() - MINIMAP_MARGIN_PX - size,
    );
    let normalized = (cursor - origin) / size;
    (normalized.cmpge(Vec2::ZERO).all() && normalized.cmple(Vec2::ONE).all()).then_some(normalized)
}

/// Spectating: a click (or drag) on the minimap centres the camera there.
pub fn click_minimap(
    buttons: Res<ButtonInput<MouseButton>>,
    settings: Res<ClientSettings>,
    extent: Res<MinimapExtent>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut over: ResMut<PointerOverMinimap>,
    mut camera: Query<&mut Transform, With<MainCamera>>,
) {
    let Ok(window) = windows.single() else { return };
    let pointer = pointer_on_minimap(window);
    over.set_if_neq(PointerOverMinimap(pointer.is_some()));
    if settings.control != ControlMode::Spectate || !buttons.pressed(MouseButton::Left) {
        return;
    }
    let (Some(normalized), Ok(mut transform)) = (pointer, camera.single_mut()) else {
        return;
    };
    let target = extent.to_units(normalized) * PIXELS_PER_UNIT;
    transform.translation = target.extend(transform.translation.z);
}

fn put_dot(data: &mut [u8], texel: IVec2, size: i32, color: [u8; 4]) {
    let side = MINIMAP_PX as i32;
    for dy in 0..size {
        for dx in 0..size {
            let (x, y) = (texel.x + dx - size / 2, texel.y + dy - size / 2);
            if (0..side).contains(&x) && (0..side).contains(&y) {
                let at = ((y * side + x) * 4) as usize;
                data[at..at + 4].copy_from_slice(&color);
            }
        }
    }
}

fn put_rect(data: &mut [u8], min: IVec2, max: IVec2, color: [u8; 4]) {
    let side = MINIMAP_PX as i32;
    let clamp = |v: IVec2| v.clamp(IVec2::ZERO, IVec2::splat(side - 1));
    let (lo, hi) = (clamp(min), clamp(max));
    for x in lo.x..=hi.x {
        for y in [lo.y, hi.y] {
            put_dot(data, IVec2::new(x, y), 1, color);
        }
    }
    for y in lo.y..=hi.y {
        for x in [lo.x, hi.x] {
            put_dot(data, IVec2::new(x, y), 1, color);
        }
    }
}

/// Fills the texels of world rectangle `rect` (units) with `color` blended
/// over what is there.
fn fill_rect(data: &mut [u8], extent: &MinimapExtent, rect: Rect, color: [u8; 4]) {
    let side = MINIMAP_PX as i32;
    let a = extent.to_texel(Vec2::new(rect.min.x, rect.max.y));
    let b = extent.to_texel(Vec2::new(rect.max.x, rect.min.y));
    let alpha = u16::from(color[3]);
    for y in a.y.max(0)..=b.y.min(side - 1) {
        for x in a.x.max(0)..=b.x.min(side - 1) {
            let at = ((y * side + x) * 4) as usize;
            for channel in 0..3 {
                let under = u16::from(data[at + channel]);
                let over = u16::from(color[channel]);
                data[at + channel] = ((over * alpha + under * (255 - alpha)) / 255) as u8;
            }
        }
    }
}

/// The world rectangle (units) of cell `(column, row)` of `grid`.
fn density_cell(grid: &DensityGrid, column: usize, row: usize) -> Rect {
    let size = f32::from(grid.cell_size);
    let min = Vec2::new(f32::from(grid.origin.x), f32::from(grid.origin.y))
        + Vec2::new(column as f32, row as f32) * size;
    Rect::from_corners(min, min + Vec2::splat(size))
}

/// The world rectangle (units) the whole grid covers, if it has cells.
fn density_bounds(grid: &DensityGrid) -> Option<Rect> {
    let rows = grid.rows();
    (rows > 0).then(|| {
        density_cell(grid, 0, 0).union(density_cell(grid, usize::from(grid.columns) - 1, rows - 1))
    })
}

/// Draws every non-empty cell of `grid`, more opaque where more players stand.
fn draw_heat_map(data: &mut [u8], extent: &MinimapExtent, grid: &DensityGrid) {
    let densest = grid.counts.iter().copied().max().unwrap_or(0);
    if densest == 0 {
        return;
    }
    for row in 0..grid.rows() {
        for column in 0..usize::from(grid.columns) {
            let count = grid.count(column, row).unwrap_or(0);
            if count == 0 {
                continue;
            }
            let share = count as f32 / densest as f32;
            let alpha = HEAT_MIN_ALPHA + (255.0 - HEAT_MIN_ALPHA) * share;
            let [r, g, b] = HEAT;
            fill_rect(
                data,
                extent,
                density_cell(grid, column, row),
                [r, g, b, alpha as u8],
            );
        }
    }
}

fn rgba(color: Color) -> [u8; 4] {
    color.to_srgba().to_u8_array()
}

/// Refits the extent to everyone and the view, and redraws the texture.
#[allow(clippy::too_many_arguments)]
pub fn draw_minimap(
    time: Res<Time<Real>>,
    clock: Res<Time>,
    density: Res<DensityMap>,
    image: Option<Res<MinimapImage>>,
    mut images: ResMut<Assets<Image>>,
    mut extent: ResMut<MinimapExtent>,
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&Transform, &Projection), With<MainCamera>>,
    players: Query<(&LatestPosition, &Kind, Has<OutOfView>), With<RemotePlayer>>,
    local: Query<&Transform, (With<LocalPlayer>, Without<MainCamera>)>,
    mut last_redraw: Local<f64>,
) {
    let sampled_now = clock.elapsed_secs_f64();
    let now = time.elapsed_secs_f64();
    if now - *last_redraw < MINIMAP_REDRAW_PERIOD_SECS {
        return;
    }
    *last_redraw = now;
    let (Some(image), Ok(window), Ok((camera, projection))) =
        (image, windows.single(), camera.single())
    else {
        return;
    };
    let view = visible_rect(
        camera.translation.truncate(),
        projection_scale(projection),
        Vec2::new(window.width(), window.height()),
    );
    let view_units = Rect::from_corners(view.min / PIXELS_PER_UNIT, view.max / PIXELS_PER_UNIT);
    // Every player's newest sample (most are off screen: plain data, no sprite).
    let mut bounds = view_units;
    for (latest, _, out_of_view) in &players {
        if shown(latest, out_of_view, sampled_now)
            && let Some(latest) = latest.position()
        {
            bounds = bounds.union_point(latest);
        }
    }
    let grid = density.current(sampled_now);
    if let Some(cells) = grid.and_then(density_bounds) {
        bounds = bounds.union(cells);
    }
    let half =
        (bounds.half_size().max_element() * (1.0 + EXTENT_MARGIN)).max(MIN_HALF_EXTENT_UNITS);
    *extent = MinimapExtent {
        center: bounds.center(),
        half,
    };

    let Some(mut texture) = images.get_mut(&image.0) else {
        return;
    };
    let Some(data) = texture.data.as_mut() else {
        return;
    };
    for texel in data.chunks_exact_mut(4) {
        texel.copy_from_slice(&BACKGROUND);
    }
    if let Some(grid) = grid {
        draw_heat_map(data, &extent, grid);
    }
    put_rect(
        data,
        extent.to_texel(Vec2::new(view_units.min.x, view_units.max.y)),
        extent.to_texel(Vec2::new(view_units.max.x, view_units.min.y)),
        VIEW_RECT,
    );
    // Natives first, legacy on top (fewer, and the demo's point), then us.
    for kind in [PlayerKind::Native, PlayerKind::Legacy] {
        let color = rgba(kind_tint(kind));
        for (latest, player_kind, out_of_view) in &players {
            if player_kind.0 == kind
                && shown(latest, out_of_view, sampled_now)
                && let Some(latest) = latest.position()
            {
                put_dot(data, extent.to_texel(latest), DOT_TEXELS, color);
            }
        }
    }
    if let Ok(me) = local.single() {
        let texel = extent.to_texel(me.translation.truncate() / PIXELS_PER_UNIT);
        put_dot(data, texel, DOT_TEXELS + 1, rgba(LOCAL_TINT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_and_minimap_coordinates_round_trip() {
        let extent = MinimapExtent {
            center: Vec2::new(100.0, 0.0),
            half: 200.0,
        };
        // The top-left corner of the map is (-100, 200) in the world.
        assert_eq!(extent.to_units(Vec2::ZERO), Vec2::new(-100.0, 200.0));
        assert_eq!(extent.to_texel(Vec2::new(100.0, 0.0)), IVec2::splat(90));
        let back = extent.to_units(Vec2::new(0.25, 0.75));
        assert_eq!(back, Vec2::new(0.0, -100.0));
    }

    #[test]
    fn the_heat_map_fills_the_cells_that_hold_players() {
        use shared::legacy::Position;
        let grid = DensityGrid {
            origin: Position::new(0, 0),
            cell_size: 100,
            columns: 2,
            counts: vec![4, 0, 0, 1],
        };
        assert_eq!(
            density_bounds(&grid),
            Some(Rect::new(0.0, 0.0, 200.0, 200.0))
        );
        let extent = MinimapExtent {
            center: Vec2::new(100.0, 100.0),
            half: 100.0,
        };
        let mut data = vec![0u8; (MINIMAP_PX * MINIMAP_PX * 4) as usize];
        draw_heat_map(&mut data, &extent, &grid);
        let red_at = |units: Vec2| {
            let texel = extent.to_texel(units);
            data[((texel.y * MINIMAP_PX as i32 + texel.x) * 4) as usize]
        };
        // Densest cell (bottom-left in the world) at full colour, the
        // other one fainter, the empty ones untouched.
        assert_eq!(red_at(Vec2::new(50.0, 50.0)), HEAT[0]);
        assert!(red_at(Vec2::new(150.0, 150.0)) > 0);
        assert!(red_at(Vec2::new(150.0, 150.0)) < HEAT[0]);
        assert_eq!(red_at(Vec2::new(150.0, 50.0)), 0);
    }
}
