//! The server's overview (protocol 3) → where the players out of our view
//! are: each listed position becomes the player's latest sample, so the
//! minimap and the edge indicators find it like any other; a density grid
//! (a big world) is kept for the minimap's heat map.
//!
//! An overview sample is up to a period old when it arrives and is not
//! refreshed between overviews, so what shows it also shows its age
//! ([`overview_age`]) and stops showing it once it is stale.

use bevy::prelude::*;
use shared::native::{DensityGrid, Overview};

use super::players::{
    DrawnArea, LatestPosition, OutOfView, PlayerIndex, PlayerSystems, PositionHistory,
    RemotePlayer, position_to_units, record_position,
};
use crate::net::{LocalPlayerId, OverviewReceived, RosterEvent};

/// An out-of-view player's sample older than this is not shown any more
/// (three overviews at the server's default period of one second: one
/// lost or late overview does not make players blink).
pub const OVERVIEW_STALE_SECS: f64 = 3.0;

/// The latest density grid and when it arrived (`Time` seconds), for the
/// minimap's heat map.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct DensityMap(pub Option<(DensityGrid, f64)>);

impl DensityMap {
    /// The grid, if it is not stale at `now`.
    pub fn current(&self, now: f64) -> Option<&DensityGrid> {
        self.0
            .as_ref()
            .filter(|(_, at)| now - at <= OVERVIEW_STALE_SECS)
            .map(|(grid, _)| grid)
    }
}

/// How old an out-of-view player's position is at `now`, seconds; `None`
/// for a player in view (its position is live) or without a position.
pub fn overview_age(latest: &LatestPosition, out_of_view: bool, now: f64) -> Option<f64> {
    let (_, at) = latest.0?;
    out_of_view.then_some((now - at).max(0.0))
}

/// Whether a player is to be shown (minimap, indicators) at `now`: in view
/// with a position, or out of view with a sample that is not stale.
pub fn shown(latest: &LatestPosition, out_of_view: bool, now: f64) -> bool {
    latest.0.is_some()
        && overview_age(latest, out_of_view, now).is_none_or(|age| age <= OVERVIEW_STALE_SECS)
}

pub struct OverviewPlugin;

impl Plugin for OverviewPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<DensityMap>().add_systems(
            Update,
            apply_overview
                .after(super::players::apply_roster_events)
                .in_set(PlayerSystems::Apply),
        );
    }
}

type OverviewMotion = (
    &'static mut PositionHistory,
    &'static mut LatestPosition,
    &'static mut Transform,
    &'static mut Visibility,
);

/// Listed positions of out-of-view players → their latest sample; a grid →
/// the [`DensityMap`]. Players in view are left alone: the view's own
/// messages are newer.
#[allow(clippy::too_many_arguments)]
pub fn apply_overview(
    mut overviews: MessageReader<OverviewReceived>,
    mut roster: MessageReader<RosterEvent>,
    index: Res<PlayerIndex>,
    local_id: Res<LocalPlayerId>,
    time: Res<Time>,
    area: Res<DrawnArea>,
    mut density: ResMut<DensityMap>,
    mut players: Query<OverviewMotion, (With<RemotePlayer>, With<OutOfView>)>,
) {
    let now = time.elapsed_secs_f64();
    if roster
        .read()
        .any(|event| matches!(event, RosterEvent::Cleared))
    {
        density.0 = None;
    }
    for OverviewReceived(overview) in overviews.read() {
        match overview {
            Overview::Players(positions) => {
                density.0 = None;
                for entry in positions {
                    if Some(entry.id) == local_id.0 {
                        continue;
                    }
                    let Some(entity) = index.get(entry.id) else {
                        continue;
                    };
                    if let Ok((mut history, mut latest, mut transform, mut visibility)) =
                        players.get_mut(entity)
                    {
                        record_position(
                            &mut history,
                            &mut latest,
                            &mut transform,
                            &mut visibility,
                            position_to_units(entry.position),
                            now,
                            *area,
                        );
                    }
                }
            }
            Overview::Density(grid) => density.0 = Some((grid.clone(), now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_out_of_view_samples_age_and_go_stale() {
        let latest = LatestPosition(Some((Vec2::new(3000.0, 3000.0), 10.0)));
        assert_eq!(overview_age(&latest, false, 15.0), None, "in view: live");
        assert!(shown(&latest, false, 100.0));
        assert_eq!(overview_age(&latest, true, 12.0), Some(2.0));
        assert!(shown(&latest, true, 12.0));
        assert!(!shown(&latest, true, 10.0 + OVERVIEW_STALE_SECS + 0.1));
        assert!(!shown(&LatestPosition(None), false, 0.0), "nowhere yet");
    }
}
