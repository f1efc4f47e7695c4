//! `spanlens cost`: what one LLM call costs under the built-in price catalog.

use crate::{read_input, InputError, Outcome};
use clap::Args;
use serde_json::json;
use spanlens_core::{compute_cost, parse_provider_usage, PriceCatalog, Usage};

/// Arguments of `spanlens cost`.
#[derive(Args)]
pub struct CostArgs {
    /// Model name as the provider or instrumentation reports it (`gpt-4o-2024-08-06`, `openai/gpt-4o`, …).
    #[arg(long)]
    model: String,
    /// Provider, to break ties between catalog entries (`openai`, `anthropic`, `azure`, …).
    #[arg(long)]
    provider: Option<String>,
    /// All input tokens, cached ones included (canonical semantics).
    #[arg(long, conflicts_with = "usage_json")]
    input_tokens: Option<u64>,
    /// All output tokens, reasoning included.
    #[arg(long, conflicts_with = "usage_json")]
    output_tokens: Option<u64>,
    /// Input tokens read from the prompt cache (part of --input-tokens).
    #[arg(long, conflicts_with = "usage_json")]
    cache_read_tokens: Option<u64>,
    /// Input tokens written to the prompt cache (part of --input-tokens).
    #[arg(long, conflicts_with = "usage_json")]
    cache_write_tokens: Option<u64>,
    /// Part of --cache-write-tokens written with a one-hour TTL (Anthropic).
    #[arg(long, conflicts_with = "usage_json")]
    cache_write_1h_tokens: Option<u64>,
    /// Reasoning tokens (part of --output-tokens).
    #[arg(long, conflicts_with = "usage_json")]
    reasoning_tokens: Option<u64>,
    /// A raw provider usage object (OpenAI chat, OpenAI Responses, Anthropic, Gemini) from FILE or `-`.
    #[arg(long, value_name = "FILE|-")]
    usage_json: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `spanlens cost`; exit status 1 when the model is not in the catalog.
pub fn run(args: CostArgs) -> anyhow::Result<Outcome> {
    let (usage, format) = match &args.usage_json {
        Some(path) => {
            let bytes = read_input(path)?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| InputError(format!("--usage-json {path}: invalid JSON: {e}")))?;
            let (u, f) = parse_provider_usage(&v)
                .map_err(|e| InputError(format!("--usage-json {path}: {e}")))?;
            (u, Some(f.as_str()))
        }
        None => (flag_usage(&args)?, None),
    };
    let catalog = PriceCatalog::builtin();
    let entry = catalog.lookup(&args.model, args.provider.as_deref(), None);
    let cost = entry.map(|e| compute_cost(e, &usage));
    if args.json {
        let usd = |f: fn(&spanlens_core::CostBreakdown) -> spanlens_core::NanoUsd| {
            cost.as_ref().map(|c| f(c).as_usd_f64())
        };
        let out = json!({
            "model": args.model,
            "provider": args.provider,
            "matched": entry.is_some(),
            "pricing_id": entry.map(|e| e.id.as_str()),
            "pricing_provider": entry.map(|e| e.provider.as_str()),
            "pricing_version": catalog.version(),
            "pricing_source": entry.map(|e| e.source.as_str()),
            "usage_format": format,
            "usage": usage,
            "input_usd": usd(|c| c.input),
            "output_usd": usd(|c| c.output),
            "cache_read_usd": usd(|c| c.cache_read),
            "cache_write_usd": usd(|c| c.cache_write),
            "reasoning_usd": usd(|c| c.reasoning),
            "total_usd": usd(|c| c.total),
            "total_nano_usd": cost.as_ref().map(|c| c.total.0),
        });
        println!("{out}");
    } else {
        print_table(
            &args,
            &usage,
            format,
            entry,
            cost.as_ref(),
            catalog.version(),
        );
    }
    Ok(if entry.is_some() {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

fn flag_usage(a: &CostArgs) -> Result<Usage, InputError> {
    let input = a.input_tokens.unwrap_or(0);
    let output = a.output_tokens.unwrap_or(0);
    let read = a.cache_read_tokens.unwrap_or(0);
    let write = a.cache_write_tokens.unwrap_or(0);
    let reasoning = a.reasoning_tokens.unwrap_or(0);
    if read.saturating_add(write) > input {
        return Err(InputError(format!(
            "--cache-read-tokens {read} + --cache-write-tokens {write} exceed --input-tokens {input}: \
             input tokens include cached tokens"
        )));
    }
    if reasoning > output {
        return Err(InputError(format!(
            "--reasoning-tokens {reasoning} exceed --output-tokens {output}: output tokens include reasoning tokens"
        )));
    }
    let mut u = Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: reasoning,
        ..Default::default()
    };
    if let Some(h) = a.cache_write_1h_tokens {
        if h > write {
            return Err(InputError(format!(
                "--cache-write-1h-tokens {h} exceed --cache-write-tokens {write}"
            )));
        }
        u.extra.insert(Usage::CACHE_WRITE_1H.into(), h);
    }
    Ok(u.normalized())
}

fn print_table(
    args: &CostArgs,
    u: &Usage,
    format: Option<&str>,
    entry: Option<&spanlens_core::pricing::PriceEntry>,
    cost: Option<&spanlens_core::CostBreakdown>,
    version: &str,
) {
    let (Some(e), Some(c)) = (entry, cost) else {
        println!("model       {}", args.model);
        println!("unpriced:   no entry in price catalog {version} matches this model");
        return;
    };
    println!(
        "model       {} → {} ({}), catalog {version}",
        args.model, e.id, e.provider
    );
    if let Some(f) = format {
        println!("usage       read as {f} usage");
    }
    println!(
        "tokens      input {} (cache read {}, cache write {}), output {} (reasoning {})",
        u.input_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.output_tokens,
        u.reasoning_tokens
    );
    for (label, v) in [
        ("input", c.input),
        ("cache read", c.cache_read),
        ("cache write", c.cache_write),
        ("output", c.output),
        ("reasoning", c.reasoning),
    ] {
        println!("{label:<12}{v}");
    }
    println!("total       {}", c.total);
    println!("source      {}", e.source);
}
