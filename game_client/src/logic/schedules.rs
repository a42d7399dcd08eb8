//! The app's per-frame schedules run their systems one after another on the
//! thread that runs the schedule (Bevy's `SingleThreadedExecutor`), instead
//! of handing each one to the task pool.
//!
//! Our systems are small and mostly chained, so there is little to overlap;
//! on the 2-core machine we measure on, the multi-threaded executor's
//! wake-ups and hand-offs cost more than the overlap gained (`bench-ecs`,
//! 10,000 players: see docs/bench/client.md). Work a system splits itself
//! (`par_iter_mut`, transform propagation) still runs on the compute pool,
//! and the render world keeps its own thread.

use bevy::ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};
use bevy::prelude::*;
use bevy::state::state::StateTransition;

pub struct SerialSchedulesPlugin;

/// The schedules `Main` runs every frame besides its own (`Main`,
/// `FixedMain` and `RunFixedMainLoop` are single-threaded in Bevy already).
fn per_frame_schedules() -> [bevy::ecs::intern::Interned<dyn ScheduleLabel>; 11] {
    [
        First.intern(),
        PreUpdate.intern(),
        StateTransition.intern(),
        FixedFirst.intern(),
        FixedPreUpdate.intern(),
        FixedUpdate.intern(),
        FixedPostUpdate.intern(),
        FixedLast.intern(),
        Update.intern(),
        PostUpdate.intern(),
        Last.intern(),
    ]
}

impl Plugin for SerialSchedulesPlugin {
    fn build(&self, app: &mut App) {
        for label in per_frame_schedules() {
            // `StatesPlugin` configures `StateTransition` only if it creates
            // it: that one is left to it if it is not there yet. The others
            // are created here if no system was added to them yet.
            if label == StateTransition.intern() {
                if let Some(schedule) = app.get_schedule_mut(label) {
                    schedule.set_executor(SingleThreadedExecutor::new());
                }
                continue;
            }
            app.edit_schedule(label, |schedule| {
                schedule.set_executor(SingleThreadedExecutor::new());
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread::ThreadId;
    use std::time::Duration;

    use bevy::state::app::StatesPlugin;
    use bevy::time::TimeUpdateStrategy;

    use super::*;

    /// Where each schedule's system ran.
    #[derive(Resource, Default)]
    struct RanOn(Vec<(String, ThreadId)>);

    #[test]
    fn every_per_frame_schedule_runs_on_the_calling_thread() {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, StatesPlugin, SerialSchedulesPlugin))
            // Long frames, so the fixed-step schedules run too.
            .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_secs(1)))
            .init_resource::<RanOn>();
        for label in per_frame_schedules() {
            let name = format!("{label:?}");
            app.add_systems(label, move |mut ran: ResMut<RanOn>| {
                ran.0.push((name.clone(), std::thread::current().id()));
            });
        }
        for _ in 0..3 {
            app.update();
        }
        let ran = &app.world().resource::<RanOn>().0;
        let here = std::thread::current().id();
        for label in per_frame_schedules() {
            let name = format!("{label:?}");
            let threads: Vec<ThreadId> = ran
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .collect();
            assert!(!threads.is_empty(), "{name} never ran");
            assert!(threads.iter().all(|t| *t == here), "{name} ran elsewhere");
        }
    }
}
