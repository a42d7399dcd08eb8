//! The camera's view, for the client and for the server: remote sprites are
//! only interpolated and drawn near it ([`DrawnArea`]), and the server is
//! told about it (`ClientMessage::View`, protocol v2 area of interest) so it
//! only sends the players around it. The view is re-sent when it changed
//! meaningfully, not every frame: its centre moved more than a quarter of
//! its half extent, or its size (the zoom, the window) changed.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use shared::legacy::Position;
use shared::native::ClientMessage;

use super::camera::{CameraSystems, MainCamera, projection_scale, visible_rect};
use crate::logic::interpolation::DrawnArea;
use crate::logic::players::PIXELS_PER_UNIT;
use crate::net::{ConnectionEvent, ConnectionState, NetCommands, NetSystems};

/// The view sent to the server reaches this many visible half extents
/// beyond it (the server then widens it to whole 64-unit cells), so the
/// off-screen indicators and the minimap still see a neighbourhood of five
/// times the view (at zoom 1 in an 800×600 window, 500 units each side).
pub const VIEW_MARGIN: f32 = 4.0;
/// A move of the view's centre by more than this fraction of its half
/// extent sends a new view.
pub const RESEND_MOVE_FRACTION: f32 = 0.25;
/// Past this half extent (world units) the client asks for the whole world
/// (`half_extent` 0): the largest view the server's cap on cells always
/// serves as a view (PROTOCOL.md, "Area of interest").
pub const WHOLE_WORLD_HALF_EXTENT_UNITS: f32 = shared::native::MAX_VIEW_HALF_EXTENT as f32;

/// An area of interest as the protocol sends it: centre and half extent in
/// world units (0: the whole world).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerView {
    pub center: Position,
    pub half_extent: u16,
}

/// The last view sent on this connection (`None`: none yet).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SentView(pub Option<ServerView>);

/// The view to ask for when the camera shows `visible` (world pixels).
pub fn server_view(visible: Rect) -> ServerView {
    let center = visible.center() / PIXELS_PER_UNIT;
    let half = visible.half_size().max_element() / PIXELS_PER_UNIT * (1.0 + VIEW_MARGIN);
    let clamp = |v: f32| v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
    let half_extent = if half > WHOLE_WORLD_HALF_EXTENT_UNITS {
        0
    } else {
        half.ceil().max(1.0) as u16
    };
    ServerView {
        center: Position::new(clamp(center.x), clamp(center.y)),
        half_extent,
    }
}

/// Whether `next` differs enough from what was sent to send it.
pub fn should_send(sent: Option<ServerView>, next: ServerView) -> bool {
    let Some(sent) = sent else { return true };
    if sent.half_extent != next.half_extent {
        return true;
    }
    if sent.half_extent == 0 {
        return false;
    }
    let moved = (i32::from(sent.center.x) - i32::from(next.center.x))
        .abs()
        .max((i32::from(sent.center.y) - i32::from(next.center.y)).abs());
    moved as f32 > f32::from(sent.half_extent) * RESEND_MOVE_FRACTION
}

pub struct InterestPlugin;

impl Plugin for InterestPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<SentView>()
            .add_systems(Update, forget_view_on_welcome.in_set(NetSystems::Apply))
            .add_systems(PostUpdate, follow_camera_view.after(CameraSystems));
    }
}

/// A new connection knows no view: send ours again.
pub fn forget_view_on_welcome(
    mut messages: MessageReader<ConnectionEvent>,
    mut sent: ResMut<SentView>,
) {
    if messages
        .read()
        .any(|e| matches!(e, ConnectionEvent::Welcome { .. }))
    {
        sent.0 = None;
    }
}

/// Keeps the drawn area on the camera and tells the server when the view
/// changed meaningfully.
pub fn follow_camera_view(
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&Transform, &Projection), With<MainCamera>>,
    state: Res<State<ConnectionState>>,
    net: Option<Res<NetCommands>>,
    mut area: ResMut<DrawnArea>,
    mut sent: ResMut<SentView>,
) {
    let (Ok(window), Ok((camera, projection))) = (windows.single(), camera.single()) else {
        return;
    };
    let visible = visible_rect(
        camera.translation.truncate(),
        projection_scale(projection),
        Vec2::new(window.width(), window.height()),
    );
    area.set_if_neq(DrawnArea::around(visible));
    let next = server_view(visible);
    if *state.get() != ConnectionState::Playing || !should_send(sent.0, next) {
        return;
    }
    if let Some(net) = net {
        net.send_message(ClientMessage::View {
            center: next.center,
            half_extent: next.half_extent,
        });
        sent.0 = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(x: i16, y: i16, half_extent: u16) -> ServerView {
        ServerView {
            center: Position::new(x, y),
            half_extent,
        }
    }

    #[test]
    fn the_view_is_the_visible_rect_with_a_margin() {
        // 800×600 px at zoom 1 around (40, -20) px: 100 × 75 units half size.
        let visible = visible_rect(Vec2::new(40.0, -20.0), 1.0, Vec2::new(800.0, 600.0));
        assert_eq!(server_view(visible), view(10, -5, 500));
        // Fully zoomed out: the whole world.
        let visible = visible_rect(Vec2::ZERO, 64.0, Vec2::new(800.0, 600.0));
        assert_eq!(server_view(visible).half_extent, 0);
    }

    #[test]
    fn only_a_meaningful_change_is_sent() {
        assert!(should_send(None, view(0, 0, 100)));
        let sent = Some(view(0, 0, 100));
        assert!(!should_send(sent, view(0, 0, 100)));
        assert!(!should_send(sent, view(25, -25, 100)));
        assert!(should_send(sent, view(26, 0, 100)));
        assert!(should_send(sent, view(0, 0, 115)), "zoom changed");
        let whole = Some(view(0, 0, 0));
        assert!(!should_send(whole, view(500, 500, 0)));
        assert!(should_send(whole, view(0, 0, 900)));
    }
}
