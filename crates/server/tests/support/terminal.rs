//! A program at a real terminal: a tmux session on a private socket, so that prompts (which
//! need a terminal on standard input, or read /dev/tty) can be answered and the screen read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long to wait for text to appear on the screen before failing with what is there.
const PATIENCE: Duration = Duration::from_secs(60);

/// The marker the wrapper prints when the program exits, before the exit status.
const EXITED: &str = "[exited with status ";

/// A detached tmux session running one command; the tmux server is ended on drop.
pub struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    /// Runs `program ARGS` in `cwd` at a 200x50 terminal with `env` set. `None` (after saying
    /// the test skipped, or failing under MAYFLY_REQUIRE_PEERS) when tmux is missing.
    pub fn start(
        test: &str,
        cwd: &Path,
        env: &[(&str, &str)],
        program: &Path,
        args: &[&str],
    ) -> Option<Terminal> {
        let tmux = mayfly_testkit::program(test, "tmux", "tmux")?;
        let socket = cwd.join(format!(".tmux-{}", std::process::id()));
        let mut line = shell_quote(&program.display().to_string());
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        // The pane stays open after the program ends, showing how it ended.
        let wrapped = format!("{line}; echo \"{EXITED}$?]\"; exec sleep 3600");
        let mut command = Command::new(tmux);
        command
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
            ])
            .arg("-c")
            .arg(cwd);
        for (name, value) in env {
            command.arg("-e").arg(format!("{name}={value}"));
        }
        let status = command
            .args(["sh", "-c", &wrapped])
            .env_remove("TMUX")
            .status()
            .expect("running tmux");
        assert!(status.success(), "tmux new-session failed");
        Some(Terminal { socket })
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    /// Everything the terminal has shown, joined lines unwrapped.
    pub fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-E", "-"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen holds `text` `times` times in all; returns the screen.
    pub fn wait_for_count(&self, text: &str, times: usize) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= times {
                return screen;
            }
            if screen.contains(EXITED) && !text.starts_with(EXITED) {
                panic!("the program exited before showing {text:?}:\n{screen}");
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{text:?} did not appear; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen holds `text`; returns the screen.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_for_count(text, 1)
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        if !text.is_empty() {
            let out = self.tmux(&["send-keys", "-l", text]);
            assert!(out.status.success(), "tmux send-keys failed");
        }
        let out = self.tmux(&["send-keys", "Enter"]);
        assert!(out.status.success(), "tmux send-keys failed");
    }

    /// Waits for the program to end; its exit status and the screen.
    pub fn wait_exit(&self) -> (i32, String) {
        let screen = self.wait_for(EXITED);
        let status = screen
            .split(EXITED)
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .and_then(|code| code.trim().parse().ok())
            .unwrap_or_else(|| panic!("no exit status on the screen:\n{screen}"));
        (status, screen)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // The pane's processes form their own process group. tmux ends them with SIGHUP, which
        // mayfly-ca takes as "reload": kill the group outright first.
        let pane = self.tmux(&["display-message", "-p", "#{pane_pid}"]);
        let pid = String::from_utf8_lossy(&pane.stdout).trim().to_string();
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.tmux(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `text` quoted for sh.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
