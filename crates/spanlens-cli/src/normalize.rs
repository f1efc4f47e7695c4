//! `spanlens normalize`: canonical spans from a request body, one JSON object per line.

use crate::{read_input, InputError, Outcome};
use clap::{Args, ValueEnum};
use spanlens_core::{
    detect_json_format, normalize, InputFormat, NormalizeOptions, PriceCatalog, Timestamp,
};
use std::io::Write;

/// Arguments of `spanlens normalize`.
#[derive(Args)]
pub struct NormalizeArgs {
    /// Request body: an OTLP ExportTraceServiceRequest (JSON or protobuf) or an OpenAI Agents export; `-` for stdin.
    #[arg(value_name = "FILE|-")]
    input: String,
    /// Input format; `auto` tells JSON kinds apart by their keys and treats non-JSON as OTLP protobuf.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Project to put spans in when the input names none.
    #[arg(long, default_value = "default")]
    project: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Auto,
    OtlpJson,
    OtlpProto,
    OpenaiAgents,
}

/// Runs `spanlens normalize`; rejected spans are listed on stderr with exit status 2.
pub fn run(args: NormalizeArgs) -> anyhow::Result<Outcome> {
    let body = read_input(&args.input)?;
    let format = match args.format {
        Format::OtlpJson => InputFormat::OtlpJson,
        Format::OtlpProto => InputFormat::OtlpProtobuf,
        Format::OpenaiAgents => InputFormat::OpenAiAgents,
        Format::Auto => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{') | Some(b'[')) {
                detect_json_format(&body).map_err(|e| InputError(format!("{}: {e}", args.input)))?
            } else {
                InputFormat::OtlpProtobuf
            }
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let opts = NormalizeOptions {
        received_at: Timestamp(now),
        default_project: Some(args.project.clone()),
    };
    let out = normalize(format, &body, &opts, PriceCatalog::builtin())
        .map_err(|e| InputError(format!("{}: {e}", args.input)))?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for s in &out.spans {
        serde_json::to_writer(&mut w, s)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    if out.rejected.is_empty() {
        return Ok(Outcome::Done);
    }
    let list: Vec<String> = out.rejected.iter().map(|r| format!("  {r}")).collect();
    Err(InputError(format!(
        "{}: {} span(s) rejected, {} accepted:\n{}",
        args.input,
        out.rejected.len(),
        out.spans.len(),
        list.join("\n")
    ))
    .into())
}
