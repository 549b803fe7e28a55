//! The user programs embedded in the kernel image (built by build.rs from
//! `user/src/bin`).

macro_rules! programs {
    ($($name:literal => $env:literal),* $(,)?) => {
        /// (name, ELF image) of every embedded program.
        pub static PROGRAMS: &[(&str, &[u8])] = &[$(($name, include_bytes!(env!($env)))),*];
    };
}

programs! {
    "hello" => "PK_USER_HELLO",
    "alloc_demo" => "PK_USER_ALLOC_DEMO",
    "scribbler" => "PK_USER_SCRIBBLER",
    "wild" => "PK_USER_WILD",
    "syscall_check" => "PK_USER_SYSCALL_CHECK",
    "double_free" => "PK_USER_DOUBLE_FREE",
    "stack_overflow" => "PK_USER_STACK_OVERFLOW",
    "kernel_peek" => "PK_USER_KERNEL_PEEK",
}

/// The image of the embedded program `name`.
pub fn image(name: &str) -> Option<&'static [u8]> {
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|(_, image)| *image)
}

/// Spawns the embedded program `name`.
pub fn spawn(name: &'static str) -> Result<super::Pid, super::SpawnError> {
    let image = image(name).ok_or(super::SpawnError::Elf(super::ElfError::TooShort))?;
    super::spawn(name, image)
}
