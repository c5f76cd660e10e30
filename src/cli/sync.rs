//! `mvault sync`: bring the clone's record up to date with its remote.

use std::io::Write;
use std::path::Path;

use mvault::model::text::escape;
use mvault::ops::sync;

use super::{json_line, open_vault, CliResult};

/// Run `mvault sync`: one library call, then the outcome as text or JSON.
pub(super) fn run(
    json: bool,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    let vault = open_vault(dir)?;
    let o = sync::sync(&vault, now.unix_timestamp())?;
    if json {
        return json_line(out, &o);
    }
    let short = |id: &str| id.chars().take(12).collect::<String>();
    match &o.main_before {
        Some(b) if o.commits == 0 => writeln!(
            out,
            "main is up to date with {} at {}",
            escape(&o.remote),
            short(b)
        )?,
        before => writeln!(
            out,
            "main fast-forwarded from {} to {} ({} commit(s) from {})",
            before
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "nothing".into()),
            short(&o.main_after),
            o.commits,
            escape(&o.remote)
        )?,
    }
    for t in &o.new_tags {
        writeln!(out, "new tag {}", escape(t))?;
    }
    writeln!(out, "record verified from the root keys")?;
    Ok(())
}
