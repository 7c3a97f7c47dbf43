//! `iotemu fixtures validate` and `iotemu fixtures export`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::args::FixturesCommand;

/// Runs a `fixtures` subcommand.
pub(crate) async fn run(command: &FixturesCommand) -> ExitCode {
    match command {
        FixturesCommand::Validate { files } => validate(files),
        FixturesCommand::Export {
            connection_string,
            out,
            ca_file,
            id_scope,
        } => {
            export(
                connection_string,
                out.as_deref(),
                ca_file.as_deref(),
                id_scope.as_deref(),
            )
            .await
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let sources: Vec<_> = files
        .iter()
        .map(|f| iotemu::internals::fixtures::FixtureSource::File(f.clone()))
        .collect();
    match iotemu::internals::fixtures::FixtureSet::load(&sources) {
        Ok(set) => {
            // Fault rules are named only when there are some: a fixture with them is a test's.
            let faults = match set.fault_count() {
                0 => String::new(),
                n => format!(", {n} fault rule(s)"),
            };
            println!(
                "valid: DPS {} (id scope {}), {} hub(s), {} enrollment(s), {} enrollment group(s){faults}",
                set.dps.host_name,
                set.dps.id_scope,
                set.hubs.len(),
                set.enrollment_count(),
                set.group_count()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `iotemu fixtures export`: exit 0 when the fixture is written and loads as is; 1 when the
/// export failed, or was written but needs editing (the reason is printed).
async fn export(
    connection_string: &str,
    out: Option<&std::path::Path>,
    ca_file: Option<&std::path::Path>,
    id_scope: Option<&str>,
) -> ExitCode {
    use iotemu::internals::fixtures_export::{self, ServiceConnection};
    let result = async {
        let connection = ServiceConnection::parse(connection_string).map_err(|e| e.to_string())?;
        let ca_pem = match ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let roots = fixtures_export::trust(ca_pem.as_deref()).map_err(|e| e.to_string())?;
        let export = fixtures_export::export(&connection, roots, id_scope)
            .await
            .map_err(|e| e.to_string())?;
        match out {
            Some(path) => std::fs::write(path, export.to_json())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            None => print!("{}", export.to_json()),
        }
        Ok::<_, String>(export)
    }
    .await;
    let export = match result {
        Ok(export) => export,
        Err(message) => {
            eprintln!("iotemu fixtures export: {message}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &export.warnings {
        eprintln!("warning: {warning}");
    }
    let target = out.map_or("stdout".to_owned(), |p| p.display().to_string());
    eprintln!(
        "exported {} enrollment(s) and {} enrollment group(s) to {target}",
        export.fixture.enrollments.len(),
        export.fixture.enrollment_groups.len()
    );
    match export.check() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iotemu fixtures export: the fixture does not load as is: {e}");
            ExitCode::FAILURE
        }
    }
}
