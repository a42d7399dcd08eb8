//! The main schedules run their systems one after another on the thread
//! that runs the schedule (Bevy's `SingleThreadedExecutor`), instead of
//! handing each one to the task pool.
//!
//! Our systems are small and mostly chained, so there is little to overlap;
//! on the 2-core machine we measure on, the multi-threaded executor's
//! wake-ups and hand-offs cost more than the overlap gained (`bench-ecs`,
//! 10,000 players: see docs/bench/client.md). Work a system splits itself
//! (`par_iter_mut`, transform propagation) still runs on the compute pool,
//! and the render world keeps its own thread.

use bevy::ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};
use bevy::prelude::*;

pub struct SerialSchedulesPlugin;

impl Plugin for SerialSchedulesPlugin {
    fn build(&self, app: &mut App) {
        for label in [
            First.intern(),
            PreUpdate.intern(),
            Update.intern(),
            PostUpdate.intern(),
            Last.intern(),
        ] {
            app.edit_schedule(label, |schedule| {
                schedule.set_executor(SingleThreadedExecutor::new());
            });
        }
    }
}
