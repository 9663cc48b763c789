//! `skim scan`: today's gap-up candidates with price-sensitive
//! announcements.

use anyhow::Result;
use clap::Args;
use skim_asx::scan::{self, ScanOptions, ScanReport, Status};
use skim_asx::store::Store;
use skim_asx::{Ctx, error, outbox, output};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Minimum gap of the open over the prior close, in percent
    #[arg(long, value_name = "PCT", default_value_t = 3.0)]
    pub min_gap: f64,

    /// Minimum last traded price, AUD
    #[arg(long, value_name = "P", default_value_t = 0.01)]
    pub min_price: f64,

    /// Minimum shares traded today
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub min_volume: u64,

    /// Scan and print, but store nothing and send nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Store the results but send no Discord message
    #[arg(long)]
    pub no_notify: bool,
}

pub fn run(ctx: &Ctx, args: ScanArgs) -> Result<()> {
    // NaN would compare false against every gap and price and let every
    // stock through.
    for (name, value) in [("--min-gap", args.min_gap), ("--min-price", args.min_price)] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(error::usage(format!(
                "{name} is {value}; expected a number of zero or more"
            ))
            .into());
        }
    }
    let opts = ScanOptions {
        min_gap_pct: args.min_gap,
        min_price: args.min_price,
        min_volume: args.min_volume,
    };
    let now = ctx.now();
    let notify = !args.no_notify;
    // A dry run leaves no trace: no database, no outbox.
    let store = if args.dry_run {
        None
    } else {
        Some(Store::open(&ctx.config.db_path)?)
    };
    let report = match scan::scan(&ctx.config, now, &opts) {
        Ok(report) => report,
        Err(err) => {
            if let (Some(store), true) = (&store, notify) {
                scan::record_failure(store, &err, now)?;
                deliver(ctx, store);
            }
            return Err(err);
        }
    };
    if let Some(store) = &store
        && report.status == Status::Ok
    {
        let new = scan::record(store, &report, now, notify)?;
        log::info!("{} candidates, {} new", report.candidates.len(), new.len());
        if notify {
            deliver(ctx, store);
        }
    }
    if ctx.json {
        output::print_json(&report)
    } else {
        print_human(&report)
    }
}

/// Sends what the outbox holds; a failure is a warning, never the scan's.
fn deliver(ctx: &Ctx, store: &Store) {
    outbox::deliver_quietly(store, ctx.config.discord_webhook_url.as_ref(), ctx.now());
}

fn print_human(report: &ScanReport) -> Result<()> {
    if report.status == Status::Skipped {
        let reason = report.reason.as_deref().unwrap_or("nothing to do");
        return output::print_text(&format!("{}: skipped: {reason}", report.date));
    }
    let mut text = format!(
        "{}: {} candidate(s)\n",
        report.date,
        report.candidates.len()
    );
    if !report.candidates.is_empty() {
        let mut table = output::table([
            "ticker",
            "gap %",
            "prior close",
            "open",
            "last",
            "volume",
            "announced",
            "headline",
        ]);
        for c in &report.candidates {
            table.add_row(vec![
                c.ticker.clone(),
                format!("{:.2}", c.gap_pct),
                price(c.prior_close),
                price(c.open),
                price(c.last),
                c.volume.to_string(),
                c.announced_at.format("%H:%M").to_string(),
                c.headline.clone(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if !report.rejected.is_empty() {
        let mut table = output::table(["rejected", "gap %", "reason"]);
        for r in &report.rejected {
            let gap = r
                .gap_pct
                .map_or_else(|| "-".to_owned(), |g| format!("{g:.2}"));
            table.add_row(vec![r.ticker.clone(), gap, r.reason.clone()]);
        }
        text.push_str(&format!("{table}\n"));
    }
    output::print_text(&text)
}

/// Prices as the ASX quotes them: three decimals below ten cents' step band
/// (A$2), two above.
fn price(value: f64) -> String {
    if value < 2.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.2}")
    }
}
