//! F2: the link conditioner panel. Changes the same lag / jitter / loss as
//! the `--lag-ms`, `--jitter-ms` and `--loss` flags, at run time; the network
//! thread applies them to both directions at once.
//!
//! Keys while the panel is open: `Z`/`X` lag −/+, `C`/`V` jitter −/+,
//! `B`/`N` loss −/+, `0` turns the conditioner off.

use std::time::Duration;

use bevy::prelude::*;

use super::layout;
use crate::net::LinkSettings;
use crate::net::conditioner::{LinkConditions, MAX_LAG};

/// Lag step per key press.
pub const LAG_STEP: Duration = Duration::from_millis(25);
/// Jitter step per key press.
pub const JITTER_STEP: Duration = Duration::from_millis(10);
/// Loss step per key press (probability).
pub const LOSS_STEP: f32 = 0.05;
const PANEL_FONT_PX: f32 = 15.0;

/// Whether the panel is open (F2).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkPanelOpen(pub bool);

#[derive(Component, Debug, Default)]
pub struct LinkPanelText;

pub struct LinkPanelPlugin;

impl Plugin for LinkPanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<LinkPanelOpen>()
            .add_systems(Startup, spawn_link_panel)
            .add_systems(
                Update,
                (toggle_link_panel, edit_link_conditions, show_link_panel).chain(),
            );
    }
}

fn spawn_link_panel(mut commands: Commands) {
    commands.spawn((
        LinkPanelText,
        Text::new(""),
        TextFont::from_font_size(PANEL_FONT_PX),
        TextColor(Color::WHITE),
        // The box `view::layout` plans around.
        Node {
            position_type: PositionType::Absolute,
            right: Val::Px(layout::EDGE_GAP_PX),
            top: Val::Px(layout::EDGE_GAP_PX),
            width: Val::Px(layout::LINK_PANEL_SIZE_PX.x),
            height: Val::Px(layout::LINK_PANEL_SIZE_PX.y),
            overflow: Overflow::clip(),
            padding: UiRect::all(Val::Px(8.0)),
            ..default()
        },
        BackgroundColor(Color::srgba(0.1, 0.0, 0.2, 0.8)),
        Visibility::Hidden,
    ));
}

pub fn toggle_link_panel(keys: Res<ButtonInput<KeyCode>>, mut open: ResMut<LinkPanelOpen>) {
    if keys.just_pressed(KeyCode::F2) {
        open.0 = !open.0;
    }
}

/// The conditions after one key press (`None` if the key does nothing).
pub fn apply_key(conditions: LinkConditions, key: KeyCode) -> Option<LinkConditions> {
    let mut next = conditions;
    match key {
        KeyCode::KeyZ => next.lag = next.lag.saturating_sub(LAG_STEP),
        KeyCode::KeyX => next.lag = (next.lag + LAG_STEP).min(MAX_LAG),
        KeyCode::KeyC => next.jitter = next.jitter.saturating_sub(JITTER_STEP),
        KeyCode::KeyV => next.jitter = (next.jitter + JITTER_STEP).min(MAX_LAG),
        KeyCode::KeyB => next.loss = (next.loss - LOSS_STEP).max(0.0),
        KeyCode::KeyN => next.loss = (next.loss + LOSS_STEP).min(1.0),
        KeyCode::Digit0 => next = LinkConditions::default(),
        _ => return None,
    }
    // Rounding keeps "5 %" from drifting into 4.9999 after a few presses.
    next.loss = (next.loss * 100.0).round() / 100.0;
    Some(next)
}

pub fn edit_link_conditions(
    keys: Res<ButtonInput<KeyCode>>,
    open: Res<LinkPanelOpen>,
    mut settings: ResMut<LinkSettings>,
) {
    if !open.0 {
        return;
    }
    for key in keys.get_just_pressed() {
        if let Some(next) = apply_key(settings.0, *key) {
            info!("link conditioner: {}", next.describe());
            settings.set_if_neq(LinkSettings(next));
        }
    }
}

pub fn show_link_panel(
    open: Res<LinkPanelOpen>,
    settings: Res<LinkSettings>,
    mut panels: Query<(&mut Text, &mut Visibility), With<LinkPanelText>>,
) {
    if !open.is_changed() && !settings.is_changed() {
        return;
    }
    let c = settings.0;
    for (mut text, mut visibility) in &mut panels {
        visibility.set_if_neq(if open.0 {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        });
        text.0 = format!(
            "LINK CONDITIONER (both directions)\n\
             [Z/X] lag:    {} ms\n\
             [C/V] jitter: {} ms\n\
             [B/N] loss:   {:.0} % of position updates\n\
             [0] off   [F2] close",
            c.lag.as_millis(),
            c.jitter.as_millis(),
            c.loss * 100.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_step_the_conditions_within_their_ranges() {
        let start = LinkConditions::default();
        let lag = apply_key(start, KeyCode::KeyX).unwrap();
        assert_eq!(lag.lag, LAG_STEP);
        assert_eq!(apply_key(start, KeyCode::KeyZ).unwrap().lag, Duration::ZERO);
        let mut lossy = start;
        for _ in 0..30 {
            lossy = apply_key(lossy, KeyCode::KeyN).unwrap();
        }
        assert_eq!(lossy.loss, 1.0);
        assert_eq!(
            apply_key(lossy, KeyCode::Digit0),
            Some(LinkConditions::default())
        );
        assert_eq!(apply_key(start, KeyCode::KeyQ), None);
    }
}
