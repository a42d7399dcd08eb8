//! The HUD: connection line, players online, RTT, updates/s and bytes/s with a
//! live bar graph of the last samples, and a banner while disconnected.

use bevy::prelude::*;

use super::layout;
use crate::ClientSettings;
use crate::logic::interpolation::InterpolationDelay;
use crate::logic::stats::{NetStats, STATS_HISTORY_LEN, format_rtt};
use crate::net::{ConnectionInfo, ConnectionState, LinkSettings, LocalPlayerId, NetSystems};

/// Height of the graph at its current maximum, pixels.
pub const GRAPH_HEIGHT_PX: f32 = 40.0;
/// Width of one bar, pixels.
pub const GRAPH_BAR_WIDTH_PX: f32 = 4.0;
const HUD_FONT_PX: f32 = 15.0;
const BANNER_FONT_PX: f32 = 26.0;

/// The HUD's statistics text.
#[derive(Component, Debug, Default)]
pub struct HudText;

/// One bar of the updates/s graph; `.0` is its index, oldest first.
#[derive(Component, Debug)]
pub struct GraphBar(pub usize);

/// The centered "connection lost" banner.
#[derive(Component, Debug, Default)]
pub struct DisconnectedBanner;

pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_hud).add_systems(
            Update,
            (show_hud_text, show_stats_graph, show_disconnected_banner).after(NetSystems::Apply),
        );
    }
}

fn spawn_hud(mut commands: Commands) {
    commands
        .spawn((
            // The box `view::layout` plans around (nothing may overlap it).
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(layout::EDGE_GAP_PX),
                top: Val::Px(layout::EDGE_GAP_PX),
                width: Val::Px(layout::HUD_SIZE_PX.x),
                height: Val::Px(layout::HUD_SIZE_PX.y),
                overflow: Overflow::clip(),
                padding: UiRect::all(Val::Px(6.0)),
                flex_direction: FlexDirection::Column,
                row_gap: Val::Px(4.0),
                ..default()
            },
            BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.6)),
        ))
        .with_children(|panel| {
            panel.spawn((
                HudText,
                Text::new("connecting…"),
                TextFont::from_font_size(HUD_FONT_PX),
                TextColor(Color::WHITE),
            ));
            panel
                .spawn(Node {
                    height: Val::Px(GRAPH_HEIGHT_PX),
                    align_items: AlignItems::FlexEnd,
                    column_gap: Val::Px(1.0),
                    ..default()
                })
                .with_children(|graph| {
                    for index in 0..STATS_HISTORY_LEN {
                        graph.spawn((
                            GraphBar(index),
                            Node {
                                width: Val::Px(GRAPH_BAR_WIDTH_PX),
                                height: Val::Px(0.0),
                                ..default()
                            },
                            BackgroundColor(Color::srgb(0.3, 0.9, 0.5)),
                        ));
                    }
                });
        });
    commands.spawn((
        DisconnectedBanner,
        Text::new(""),
        TextFont::from_font_size(BANNER_FONT_PX),
        TextColor(Color::srgb(1.0, 0.4, 0.3)),
        Node {
            position_type: PositionType::Absolute,
            top: Val::Percent(40.0),
            left: Val::Percent(10.0),
            right: Val::Percent(10.0),
            padding: UiRect::all(Val::Px(10.0)),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.75)),
        Visibility::Hidden,
    ));
}

/// What the HUD text is made of.
#[derive(Debug, Clone, Copy)]
pub struct HudInputs<'a> {
    pub stats: &'a NetStats,
    pub state: ConnectionState,
    pub info: &'a ConnectionInfo,
    pub local_id: LocalPlayerId,
    pub settings: &'a ClientSettings,
    pub link: LinkSettings,
    pub delay: &'a InterpolationDelay,
}

/// The HUD text as shown; a function so tests can check the wording.
pub fn hud_text(inputs: HudInputs) -> String {
    let who = match inputs.local_id.0 {
        Some(id) => format!("{} #{id}", inputs.settings.name),
        None => inputs.settings.name.clone(),
    };
    let stats = inputs.stats;
    format!(
        "{:?} {} as {who}\nplayers online: {}\nRTT: {}\nupdates/s: {:.0}   KB/s: {:.1}\n\
         interp delay: {:.0} ms (jitter {:.0} ms)\nlink: {}\n\
         [F1] overlay [F2] link  [F] fit everyone",
        inputs.state,
        inputs.info.target,
        stats.players_online,
        format_rtt(stats.rtt),
        stats.updates_per_sec,
        stats.bytes_per_sec / 1024.0,
        inputs.delay.delay_secs * 1000.0,
        inputs.delay.jitter_secs * 1000.0,
        inputs.link.0.describe(),
    )
}

#[allow(clippy::too_many_arguments)]
pub fn show_hud_text(
    stats: Res<NetStats>,
    state: Res<State<ConnectionState>>,
    info: Res<ConnectionInfo>,
    local_id: Res<LocalPlayerId>,
    settings: Res<ClientSettings>,
    link: Res<LinkSettings>,
    delay: Res<InterpolationDelay>,
    mut texts: Query<&mut Text, With<HudText>>,
) {
    let changed = stats.is_changed()
        || state.is_changed()
        || info.is_changed()
        || local_id.is_changed()
        || link.is_changed()
        || delay.is_changed();
    if !changed {
        return;
    }
    let text = hud_text(HudInputs {
        stats: &stats,
        state: *state.get(),
        info: &info,
        local_id: *local_id,
        settings: &settings,
        link: *link,
        delay: &delay,
    });
    for mut shown in &mut texts {
        if shown.0 != text {
            shown.0.clone_from(&text);
        }
    }
}

/// Bar heights follow the history, scaled to its maximum.
pub fn show_stats_graph(stats: Res<NetStats>, mut bars: Query<(&GraphBar, &mut Node)>) {
    if !stats.is_changed() {
        return;
    }
    let max = stats.history.iter().copied().fold(1.0_f32, f32::max);
    // Right-align: the newest sample is the last bar.
    let offset = STATS_HISTORY_LEN.saturating_sub(stats.history.len());
    for (bar, mut node) in &mut bars {
        let value = bar
            .0
            .checked_sub(offset)
            .and_then(|i| stats.history.get(i))
            .copied()
            .unwrap_or(0.0);
        let height = Val::Px((value / max * GRAPH_HEIGHT_PX).max(1.0));
        if node.height != height {
            node.height = height;
        }
    }
}

pub fn show_disconnected_banner(
    state: Res<State<ConnectionState>>,
    info: Res<ConnectionInfo>,
    time: Res<Time<Real>>,
    mut banners: Query<(&mut Text, &mut Visibility), With<DisconnectedBanner>>,
) {
    for (mut text, mut visibility) in &mut banners {
        if *state.get() != ConnectionState::Disconnected {
            visibility.set_if_neq(Visibility::Hidden);
            continue;
        }
        let retry = info
            .retry_at_secs
            .map(|at| (at - time.elapsed_secs_f64()).max(0.0))
            .unwrap_or(0.0);
        text.0 = format!(
            "Connection to {} lost: {}\nretrying in {retry:.1} s…",
            info.target,
            info.last_error.as_deref().unwrap_or("unknown reason")
        );
        visibility.set_if_neq(Visibility::Visible);
    }
}
