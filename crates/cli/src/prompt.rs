//! Questions at the terminal: a line, yes or no, one of a list. Each asks again after an
//! answer it cannot use, as step's prompts do, and without a terminal fails naming the flag
//! that answers instead.

use std::io::IsTerminal;

use anyhow::{Context, bail};

/// How many unusable answers a prompt takes before giving up (so a closed terminal that keeps
/// returning nothing cannot loop forever).
pub const ATTEMPTS: usize = 3;

/// Whether someone can be asked: standard input is a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// A line typed after `prompt`; `flag` answers it instead.
pub fn line(prompt: &str, flag: &str) -> anyhow::Result<String> {
    if !interactive() {
        bail!("missing {flag}: pass it, or run in a terminal to be asked");
    }
    for _ in 0..ATTEMPTS {
        crate::output::write_stderr(&format!("{prompt}: "));
        let mut answer = String::new();
        let read = std::io::stdin()
            .read_line(&mut answer)
            .context("reading from the terminal")?;
        if read == 0 {
            bail!("missing {flag}: the terminal closed before an answer");
        }
        let answer = answer.trim();
        if !answer.is_empty() {
            return Ok(answer.to_string());
        }
        note!("An answer is required.");
    }
    bail!("missing {flag}: no answer after {ATTEMPTS} attempts")
}

/// Yes or no to `question` (without the `[y/n]`).
pub fn confirm(question: &str, flag: &str) -> anyhow::Result<bool> {
    for _ in 0..ATTEMPTS {
        let answer = line(&format!("{question} [y/n]"), flag)?.to_ascii_lowercase();
        match answer.as_str() {
            "y" | "yes" => return Ok(true),
            "n" | "no" => return Ok(false),
            _ => note!("Please answer y or n."),
        }
    }
    bail!("no answer to {question:?} after {ATTEMPTS} attempts")
}

/// The index of the item chosen from `items` (shown numbered under `question`).
pub fn choose(question: &str, items: &[String], flag: &str) -> anyhow::Result<usize> {
    if !interactive() {
        bail!("missing {flag}: pass it, or run in a terminal to be asked");
    }
    let mut menu = format!("{question}\n");
    for (number, item) in (1..).zip(items) {
        menu.push_str(&format!("  {number}) {item}\n"));
    }
    crate::output::write_stderr(&menu);
    for _ in 0..ATTEMPTS {
        let answer = line(&format!("Choose one [1-{}]", items.len()), flag)?;
        match answer.parse::<usize>() {
            Ok(number) if (1..=items.len()).contains(&number) => return Ok(number - 1),
            _ => note!("{answer:?} is not a number from 1 to {}.", items.len()),
        }
    }
    bail!("missing {flag}: no choice after {ATTEMPTS} attempts")
}
