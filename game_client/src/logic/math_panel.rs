//! Math from the client: pick an operation and two numbers with the keyboard,
//! send it with Enter, and show the server's answer (errors included).
//!
//! Keys: `M` cycles the operation, `1`/`2` decrease/increase A, `3`/`4`
//! decrease/increase B (hold Shift for steps of 10), `Enter` sends.

use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use shared::math::{MathOp, MathStatus};

use crate::ClientSettings;
use shared::native::ClientMessage;

use crate::net::{ConnectionState, MathAnswerReceived, NetCommands, NetSystems};

/// Step of the number keys without / with Shift.
pub const NUMBER_STEP: i16 = 1;
pub const NUMBER_STEP_SHIFTED: i16 = 10;
/// Queries older than this without an answer are reported as lost.
pub const ANSWER_TIMEOUT_SECS: f64 = 5.0;
const PANEL_FONT_PX: f32 = 15.0;

/// A query to send (from the keys, or from code and tests).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendMathQuery {
    pub op: MathOp,
    pub a: i16,
    pub b: i16,
}

/// The panel's state: what would be sent, what is in flight, the last result.
#[derive(Resource, Debug)]
pub struct MathPanel {
    pub op: MathOp,
    pub a: i16,
    pub b: i16,
    pub next_request_id: u32,
    /// In-flight queries by request id, with the `Time<Real>` seconds they left.
    pub pending: HashMap<u32, (SendMathQuery, f64)>,
    /// The last answer (or error) as shown to the user.
    pub last_result: Option<String>,
}

impl Default for MathPanel {
    fn default() -> Self {
        MathPanel {
            op: MathOp::Suma,
            a: 7,
            b: 3,
            next_request_id: 1,
            pending: HashMap::default(),
            last_result: None,
        }
    }
}

/// The panel's text node (windowed only).
#[derive(Component, Debug, Default)]
pub struct MathPanelText;

pub struct MathPanelPlugin;

impl Plugin for MathPanelPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<MathPanel>()
            .add_message::<SendMathQuery>()
            .add_systems(Startup, spawn_math_panel)
            .add_systems(
                Update,
                (
                    edit_math_query.before(NetSystems::Send),
                    apply_math_answers.in_set(NetSystems::Apply),
                    send_math_queries.in_set(NetSystems::Send),
                    show_math_panel.after(NetSystems::Send),
                ),
            );
    }
}

fn next_op(op: MathOp) -> MathOp {
    let index = MathOp::ALL.iter().position(|o| *o == op).unwrap_or(0);
    MathOp::ALL[(index + 1) % MathOp::ALL.len()]
}

/// The keys edit the query; Enter queues it.
pub fn edit_math_query(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    mut panel: ResMut<MathPanel>,
    mut queries: MessageWriter<SendMathQuery>,
) {
    let Some(keys) = keys else { return };
    let step = if keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]) {
        NUMBER_STEP_SHIFTED
    } else {
        NUMBER_STEP
    };
    if keys.just_pressed(KeyCode::KeyM) {
        panel.op = next_op(panel.op);
    }
    if keys.just_pressed(KeyCode::Digit1) {
        panel.a = panel.a.saturating_sub(step);
    }
    if keys.just_pressed(KeyCode::Digit2) {
        panel.a = panel.a.saturating_add(step);
    }
    if keys.just_pressed(KeyCode::Digit3) {
        panel.b = panel.b.saturating_sub(step);
    }
    if keys.just_pressed(KeyCode::Digit4) {
        panel.b = panel.b.saturating_add(step);
    }
    if keys.any_just_pressed([KeyCode::Enter, KeyCode::NumpadEnter]) {
        queries.write(SendMathQuery {
            op: panel.op,
            a: panel.a,
            b: panel.b,
        });
    }
}

/// Queued queries go to the server (or are refused while offline).
pub fn send_math_queries(
    mut queries: MessageReader<SendMathQuery>,
    mut panel: ResMut<MathPanel>,
    state: Res<State<ConnectionState>>,
    net: Res<NetCommands>,
    time: Res<Time<Real>>,
) {
    for query in queries.read() {
        if *state.get() != ConnectionState::Playing {
            panel.last_result = Some("not connected: query not sent".into());
            continue;
        }
        let request_id = panel.next_request_id;
        panel.next_request_id = panel.next_request_id.wrapping_add(1);
        net.send_message(ClientMessage::MathQuery {
            request_id,
            op: query.op,
            a: query.a,
            b: query.b,
        });
        panel
            .pending
            .insert(request_id, (*query, time.elapsed_secs_f64()));
        info!(
            "math query #{request_id}: {} {} {}",
            query.op, query.a, query.b
        );
    }
    let now = time.elapsed_secs_f64();
    // Look before touching: a write would mark the panel changed and
    // rebuild its text every frame.
    let expired = |sent: f64| now - sent >= ANSWER_TIMEOUT_SECS;
    if !panel.pending.values().any(|(_, sent)| expired(*sent)) {
        return;
    }
    let mut lost = Vec::new();
    panel.pending.retain(|id, (_, sent)| {
        let keep = !expired(*sent);
        if !keep {
            lost.push(*id);
        }
        keep
    });
    if let Some(id) = lost.first() {
        panel.last_result = Some(format!("query #{id}: no answer (connection lost?)"));
    }
}

/// Human text for an answer.
pub fn describe_answer(query: Option<&SendMathQuery>, status: MathStatus, value: f64) -> String {
    let question = query
        .map(|q| format!("{} {} {}", q.op, q.a, q.b))
        .unwrap_or_else(|| "?".into());
    match status {
        MathStatus::Ok => format!("{question} = {value}"),
        MathStatus::DivisionByZero => format!("{question} → error: division by zero"),
        MathStatus::UnknownCommand => format!("{question} → error: unknown command"),
        MathStatus::Malformed => format!("{question} → error: malformed request"),
    }
}

/// Server answers → the panel's last result (and the log).
pub fn apply_math_answers(
    mut messages: MessageReader<MathAnswerReceived>,
    mut panel: ResMut<MathPanel>,
) {
    for answer in messages.read() {
        let request_id = answer.request_id;
        let query = panel.pending.remove(&request_id).map(|(q, _)| q);
        let text = describe_answer(query.as_ref(), answer.status, answer.value);
        info!("math answer #{request_id}: {text}");
        panel.last_result = Some(text);
    }
}

fn spawn_math_panel(mut commands: Commands, settings: Res<ClientSettings>) {
    if settings.headless {
        return;
    }
    commands.spawn((
        MathPanelText,
        Text::new(""),
        TextFont::from_font_size(PANEL_FONT_PX),
        TextColor(Color::WHITE),
        // The box `view::layout` plans around.
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(crate::view::layout::EDGE_GAP_PX),
            bottom: Val::Px(crate::view::layout::EDGE_GAP_PX),
            width: Val::Px(crate::view::layout::MATH_PANEL_SIZE_PX.x),
            height: Val::Px(crate::view::layout::MATH_PANEL_SIZE_PX.y),
            overflow: Overflow::clip(),
            padding: UiRect::all(Val::Px(6.0)),
            ..default()
        },
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.6)),
    ));
}

/// Redraws the panel text when the panel changed.
pub fn show_math_panel(panel: Res<MathPanel>, mut texts: Query<&mut Text, With<MathPanelText>>) {
    if !panel.is_changed() {
        return;
    }
    for mut text in &mut texts {
        text.0 = format!(
            "MATH [M] op: {}  [1/2] A: {}  [3/4] B: {}  [Enter]\n{}",
            panel.op,
            panel.a,
            panel.b,
            panel.last_result.as_deref().unwrap_or("(no answer yet)")
        );
    }
}
