//! The four functions, by name.

/// One of the four Lambda functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    Request,
    Backup,
    Restore,
    Redrive,
}

impl Function {
    pub const ALL: [Function; 4] = [
        Function::Request,
        Function::Backup,
        Function::Restore,
        Function::Redrive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Request => "request",
            Function::Backup => "backup",
            Function::Restore => "restore",
            Function::Redrive => "redrive",
        }
    }

    /// Its position in [`Function::ALL`], for per-function counters.
    pub fn index(self) -> usize {
        match self {
            Function::Request => 0,
            Function::Backup => 1,
            Function::Restore => 2,
            Function::Redrive => 3,
        }
    }
}
