//! The terminal as a killed dashboard left it. On SIGKILL nothing runs to leave raw mode, so
//! the shell gets a terminal without echo or line editing — and the next dashboard would save
//! that state as the one to restore at its end. It is put back to a usable state first, with
//! `stty` (the project forbids `unsafe`, which calling termios directly would need).

use std::process::{Command, Stdio};

/// When the terminal on stdin has canonical mode or echo off (raw mode left behind), sets it
/// back as `stty sane` does. Nothing otherwise, nor when there is no `stty` or no terminal.
pub fn repair_left_raw_mode() {
    let Ok(out) = Command::new("stty")
        .arg("-a")
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    if !out.status.success() || !left_raw(&String::from_utf8_lossy(&out.stdout)) {
        return;
    }
    let repaired = Command::new("stty")
        .arg("sane")
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if repaired {
        eprintln!("lgo-dash: the terminal was left in raw mode (a dashboard killed?): repaired");
    }
}

/// Whether `stty -a` describes a terminal left in raw mode.
fn left_raw(stty: &str) -> bool {
    stty.split_whitespace()
        .any(|flag| flag == "-icanon" || flag == "-echo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_is_told_from_stty_output() {
        let sane =
            "speed 38400 baud; rows 24; columns 80;\nisig icanon iexten echo echoe echok -echonl";
        let raw = "speed 38400 baud;\n-isig -icanon -iexten -echo echoe echok -echonl";
        assert!(!left_raw(sane));
        assert!(left_raw(raw));
        assert!(
            !left_raw("-echonl -echoprt"),
            "other echo flags are not echo"
        );
    }
}
