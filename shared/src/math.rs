//! The math service's operations and status codes, shared by the legacy
//! "math" service and the native protocol's math queries.

use serde::{Deserialize, Serialize};

/// One of the four operations of the classic math demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MathOp {
    Suma,
    Resta,
    Multiplicacion,
    Division,
}

impl MathOp {
    /// Every operation, in the order the demo lists them.
    pub const ALL: [MathOp; 4] = [
        MathOp::Suma,
        MathOp::Resta,
        MathOp::Multiplicacion,
        MathOp::Division,
    ];

    /// The command as it travels on the legacy wire (upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            MathOp::Suma => "SUMA",
            MathOp::Resta => "RESTA",
            MathOp::Multiplicacion => "MULTIPLICACION",
            MathOp::Division => "DIVISION",
        }
    }

    /// Parses a legacy command. The contract names the upper-case spelling and
    /// says the server also accepts lower case; we accept any ASCII case
    /// (`Suma` too), which is a superset of both and never rejects a command a
    /// user would recognise.
    pub fn parse(command: &[u8]) -> Option<MathOp> {
        MathOp::ALL
            .into_iter()
            .find(|op| op.as_str().as_bytes().eq_ignore_ascii_case(command))
    }

    /// Applies the operation. Inputs are `i16`, so sums, differences and
    /// products are exact in an `f64`; division is true (float) division.
    pub fn evaluate(self, a: i16, b: i16) -> MathOutcome {
        let (a, b) = (f64::from(a), f64::from(b));
        match self {
            MathOp::Suma => MathOutcome::ok(a + b),
            MathOp::Resta => MathOutcome::ok(a - b),
            MathOp::Multiplicacion => MathOutcome::ok(a * b),
            MathOp::Division if b == 0.0 => MathOutcome::error(MathStatus::DivisionByZero),
            MathOp::Division => MathOutcome::ok(a / b),
        }
    }
}

impl std::fmt::Display for MathOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MathOp {
    type Err = UnknownMathOp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MathOp::parse(s.as_bytes()).ok_or_else(|| UnknownMathOp(s.to_owned()))
    }
}

/// A command that is not one of the four operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown math operation {0:?} (expected SUMA, RESTA, MULTIPLICACION or DIVISION)")]
pub struct UnknownMathOp(pub String);

/// The status of a math reply, with the wire values of the legacy contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MathStatus {
    /// 0: the value is the result; the connection stays open.
    Ok,
    /// 1: division by zero, value 0.0; the connection stays open.
    DivisionByZero,
    /// 2: unknown command, value 0.0; the connection stays open.
    UnknownCommand,
    /// 3: malformed request, value 0.0; the legacy connection is closed after it.
    Malformed,
}

impl MathStatus {
    pub fn code(self) -> i32 {
        match self {
            MathStatus::Ok => 0,
            MathStatus::DivisionByZero => 1,
            MathStatus::UnknownCommand => 2,
            MathStatus::Malformed => 3,
        }
    }

    /// A short name for logs and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            MathStatus::Ok => "ok",
            MathStatus::DivisionByZero => "division_by_zero",
            MathStatus::UnknownCommand => "unknown_command",
            MathStatus::Malformed => "malformed",
        }
    }
}

impl TryFrom<i32> for MathStatus {
    type Error = i32;

    fn try_from(code: i32) -> Result<Self, i32> {
        match code {
            0 => Ok(MathStatus::Ok),
            1 => Ok(MathStatus::DivisionByZero),
            2 => Ok(MathStatus::UnknownCommand),
            3 => Ok(MathStatus::Malformed),
            other => Err(other),
        }
    }
}

/// The result of one math request: a status and a value (0.0 unless `Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MathOutcome {
    pub status: MathStatus,
    pub value: f64,
}

impl MathOutcome {
    pub fn ok(value: f64) -> Self {
        MathOutcome {
            status: MathStatus::Ok,
            value,
        }
    }

    pub fn error(status: MathStatus) -> Self {
        MathOutcome { status, value: 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_upper_lower_and_mixed_case() {
        assert_eq!(MathOp::parse(b"SUMA"), Some(MathOp::Suma));
        assert_eq!(MathOp::parse(b"suma"), Some(MathOp::Suma));
        assert_eq!(
            MathOp::parse(b"Multiplicacion"),
            Some(MathOp::Multiplicacion)
        );
        assert_eq!(MathOp::parse(b"division"), Some(MathOp::Division));
        assert_eq!(MathOp::parse(b"SUM"), None);
        assert_eq!(MathOp::parse(b"SUMAR"), None);
        assert_eq!(MathOp::parse(b""), None);
    }

    #[test]
    fn evaluate_matches_the_contract() {
        assert_eq!(
            MathOp::Suma.evaluate(i16::MAX, i16::MAX),
            MathOutcome::ok(65534.0)
        );
        assert_eq!(
            MathOp::Resta.evaluate(i16::MIN, i16::MAX),
            MathOutcome::ok(-65535.0)
        );
        assert_eq!(
            MathOp::Multiplicacion.evaluate(i16::MIN, i16::MIN),
            MathOutcome::ok(1_073_741_824.0)
        );
        assert_eq!(MathOp::Division.evaluate(7, 2), MathOutcome::ok(3.5));
        assert_eq!(
            MathOp::Division.evaluate(-1, 3),
            MathOutcome::ok(-1.0 / 3.0)
        );
        assert_eq!(
            MathOp::Division.evaluate(5, 0),
            MathOutcome::error(MathStatus::DivisionByZero)
        );
    }

    #[test]
    fn status_codes_round_trip() {
        for code in 0..4 {
            assert_eq!(MathStatus::try_from(code).unwrap().code(), code);
        }
        assert_eq!(MathStatus::try_from(4), Err(4));
        assert_eq!(MathStatus::try_from(-1), Err(-1));
    }
}
