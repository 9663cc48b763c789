//! The trading journal: positions, the orders skim meant to send (written
//! before they are sent), and the executions it has accounted for.
//!
//! Rows are plain data; the functions here read and write them inside the
//! caller's transaction, so a command's changes land together or not at all.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::ibkr::orders::{OrderType, Side, Ticket, Tif};
use crate::store::timestamp;

/// Where a position is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionState {
    /// The entry order is working; nothing bought yet.
    Entering,
    /// Bought; the full position is held.
    Open,
    /// Half sold on day 3; the stop sits at the entry price.
    Half,
    /// Sold, by the stop, the trailing exit or a flatten.
    Closed,
    /// The entry never filled.
    Cancelled,
}

impl PositionState {
    pub fn as_str(self) -> &'static str {
        match self {
            PositionState::Entering => "entering",
            PositionState::Open => "open",
            PositionState::Half => "half",
            PositionState::Closed => "closed",
            PositionState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<PositionState> {
        Ok(match text {
            "entering" => PositionState::Entering,
            "open" => PositionState::Open,
            "half" => PositionState::Half,
            "closed" => PositionState::Closed,
            "cancelled" => PositionState::Cancelled,
            other => bail!("unknown position state {other:?} in the database"),
        })
    }

    /// Entering, open or half: skim is responsible for it.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            PositionState::Entering | PositionState::Open | PositionState::Half
        )
    }

    /// How `skim positions` names the state.
    pub fn label(self) -> &'static str {
        match self {
            PositionState::Entering => "working",
            PositionState::Open => "open",
            PositionState::Half => "half exited",
            PositionState::Closed => "closed",
            PositionState::Cancelled => "cancelled",
        }
    }
}

/// One position row.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub id: i64,
    pub entry_date: NaiveDate,
    pub ticker: String,
    pub conid: i64,
    pub state: PositionState,
    pub planned_qty: u64,
    pub planned_entry: f64,
    pub or_high: f64,
    pub or_low: f64,
    /// The protective stop's price now (the day's low, later the entry).
    pub stop_price: f64,
    /// Shares held now.
    pub quantity: u64,
    /// Shares bought in all.
    pub bought: u64,
    /// Average entry fill.
    pub entry_price: Option<f64>,
    pub realized_pnl: f64,
    pub half_date: Option<NaiveDate>,
    /// The 10-day SMA the trailing exit fired on.
    pub exit_sma: Option<f64>,
    pub exit_reason: Option<String>,
    pub filled_at: Option<String>,
    pub closed_at: Option<String>,
}

const POSITION_COLUMNS: &str = "id, entry_date, ticker, conid, state, planned_qty, \
     planned_entry, or_high, or_low, stop_price, quantity, bought, entry_price, realized_pnl, \
     half_date, exit_reason, filled_at, closed_at, exit_sma";

fn date(text: String) -> rusqlite::Result<NaiveDate> {
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn position_from(row: &Row<'_>) -> rusqlite::Result<(Position, String)> {
    let state: String = row.get(4)?;
    let half: Option<String> = row.get(14)?;
    Ok((
        Position {
            id: row.get(0)?,
            entry_date: date(row.get(1)?)?,
            ticker: row.get(2)?,
            conid: row.get(3)?,
            state: PositionState::Entering,
            planned_qty: row.get::<_, i64>(5)? as u64,
            planned_entry: row.get(6)?,
            or_high: row.get(7)?,
            or_low: row.get(8)?,
            stop_price: row.get(9)?,
            quantity: row.get::<_, i64>(10)? as u64,
            bought: row.get::<_, i64>(11)? as u64,
            entry_price: row.get(12)?,
            realized_pnl: row.get(13)?,
            half_date: half.map(date).transpose()?,
            exit_reason: row.get(15)?,
            filled_at: row.get(16)?,
            closed_at: row.get(17)?,
            exit_sma: row.get(18)?,
        },
        state,
    ))
}

fn positions_where(conn: &Connection, clause: &str) -> Result<Vec<Position>> {
    let sql = format!("SELECT {POSITION_COLUMNS} FROM positions {clause} ORDER BY entry_date, id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], position_from)?;
    rows.map(|row| {
        let (mut position, state) = row?;
        position.state = PositionState::parse(&state)?;
        Ok(position)
    })
    .collect()
}

/// Positions skim is responsible for: entering, open or half.
pub fn active_positions(conn: &Connection) -> Result<Vec<Position>> {
    positions_where(conn, "WHERE state IN ('entering', 'open', 'half')")
}

/// Every position, oldest first.
pub fn all_positions(conn: &Connection) -> Result<Vec<Position>> {
    positions_where(conn, "")
}

/// One position by id.
pub fn position(conn: &Connection, id: i64) -> Result<Position> {
    positions_where(conn, &format!("WHERE id = {id}"))?
        .pop()
        .with_context(|| format!("position {id} is not in the database"))
}

/// Whether a position for `ticker` was already started on `date`.
pub fn position_for(conn: &Connection, date: NaiveDate, ticker: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM positions WHERE entry_date = ?1 AND ticker = ?2",
            params![date.to_string(), ticker],
            |row| row.get(0),
        )
        .optional()?)
}

/// What a new position starts with.
#[derive(Clone, Debug)]
pub struct NewPosition {
    pub entry_date: NaiveDate,
    pub ticker: String,
    pub conid: i64,
    pub planned_qty: u64,
    pub planned_entry: f64,
    pub or_high: f64,
    pub or_low: f64,
    pub stop_price: f64,
}

/// Inserts a position in state `entering`; returns its id.
pub fn insert_position(conn: &Connection, new: &NewPosition, now: DateTime<Utc>) -> Result<i64> {
    conn.execute(
        "INSERT INTO positions (entry_date, ticker, conid, state, planned_qty, planned_entry,
             or_high, or_low, stop_price, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'entering', ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            new.entry_date.to_string(),
            new.ticker,
            new.conid,
            new.planned_qty as i64,
            new.planned_entry,
            new.or_high,
            new.or_low,
            new.stop_price,
            timestamp(now)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Saves a position's mutable fields.
pub fn save_position(conn: &Connection, p: &Position, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "UPDATE positions SET state = ?2, stop_price = ?3, quantity = ?4, bought = ?5,
             entry_price = ?6, realized_pnl = ?7, half_date = ?8, exit_reason = ?9,
             filled_at = ?10, closed_at = ?11, updated_at = ?12, exit_sma = ?13
         WHERE id = ?1",
        params![
            p.id,
            p.state.as_str(),
            p.stop_price,
            p.quantity as i64,
            p.bought as i64,
            p.entry_price,
            p.realized_pnl,
            p.half_date.map(|d| d.to_string()),
            p.exit_reason,
            p.filled_at,
            p.closed_at,
            timestamp(now),
            p.exit_sma
        ],
    )?;
    Ok(())
}

/// Why skim sent an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Entry,
    Stop,
    Half,
    Exit,
    Flatten,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Entry => "entry",
            Purpose::Stop => "stop",
            Purpose::Half => "half",
            Purpose::Exit => "exit",
            Purpose::Flatten => "flatten",
        }
    }

    fn parse(text: &str) -> Result<Purpose> {
        Ok(match text {
            "entry" => Purpose::Entry,
            "stop" => Purpose::Stop,
            "half" => Purpose::Half,
            "exit" => Purpose::Exit,
            "flatten" => Purpose::Flatten,
            other => bail!("unknown order purpose {other:?} in the database"),
        })
    }
}

/// Where an order is, as far as skim knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Journaled; the request may or may not have gone out.
    Intent,
    /// Sent, but the answer never came (or was a server error).
    Unknown,
    Working,
    Filled,
    Cancelled,
    /// IBKR refused it.
    Rejected,
    /// skim declined a question IBKR asked about it.
    Refused,
    /// Looked for at the broker after an unclear outcome, and not there.
    Lost,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Intent => "intent",
            OrderState::Unknown => "unknown",
            OrderState::Working => "working",
            OrderState::Filled => "filled",
            OrderState::Cancelled => "cancelled",
            OrderState::Rejected => "rejected",
            OrderState::Refused => "refused",
            OrderState::Lost => "lost",
        }
    }

    fn parse(text: &str) -> Result<OrderState> {
        Ok(match text {
            "intent" => OrderState::Intent,
            "unknown" => OrderState::Unknown,
            "working" => OrderState::Working,
            "filled" => OrderState::Filled,
            "cancelled" => OrderState::Cancelled,
            "rejected" => OrderState::Rejected,
            "refused" => OrderState::Refused,
            "lost" => OrderState::Lost,
            other => bail!("unknown order state {other:?} in the database"),
        })
    }

    /// Not known to be finished: it may still fill.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderState::Intent | OrderState::Unknown | OrderState::Working
        )
    }
}

/// One journaled order.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    /// The deterministic client order id. Sent as `cOID`, except for a
    /// bracket child, which IBKR identifies through its parent.
    pub coid: String,
    pub position_id: i64,
    pub purpose: Purpose,
    pub parent_coid: Option<String>,
    pub conid: i64,
    pub ticker: String,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: Tif,
    pub quantity: u64,
    pub price: Option<f64>,
    pub aux_price: Option<f64>,
    pub order_id: Option<String>,
    pub state: OrderState,
    pub filled: u64,
    pub avg_price: Option<f64>,
    pub note: Option<String>,
}

impl Order {
    /// The request IBKR gets for this order.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            coid: self.parent_coid.is_none().then(|| self.coid.clone()),
            parent_coid: self.parent_coid.clone(),
            conid: self.conid,
            ticker: self.ticker.clone(),
            side: self.side,
            order_type: self.order_type,
            quantity: self.quantity,
            price: self.price,
            aux_price: self.aux_price,
            tif: self.tif,
        }
    }

    /// The stop trigger, wherever the order type keeps it.
    pub fn stop_price(&self) -> Option<f64> {
        match self.order_type {
            OrderType::Stop => self.price,
            OrderType::StopLimit => self.aux_price,
            _ => None,
        }
    }

    /// The limit, for the order types that have one.
    pub fn limit_price(&self) -> Option<f64> {
        match self.order_type {
            OrderType::Limit | OrderType::StopLimit => self.price,
            _ => None,
        }
    }
}

const ORDER_COLUMNS: &str = "o.coid, o.position_id, o.purpose, o.parent_coid, o.conid, \
     p.ticker, o.side, o.order_type, o.tif, o.quantity, o.price, o.aux_price, o.order_id, \
     o.state, o.filled, o.avg_price, o.note";

fn order_from(row: &Row<'_>) -> rusqlite::Result<(Order, [String; 5])> {
    Ok((
        Order {
            coid: row.get(0)?,
            position_id: row.get(1)?,
            purpose: Purpose::Entry,
            parent_coid: row.get(3)?,
            conid: row.get(4)?,
            ticker: row.get(5)?,
            side: Side::Buy,
            order_type: OrderType::Market,
            tif: Tif::Day,
            quantity: row.get::<_, i64>(9)? as u64,
            price: row.get(10)?,
            aux_price: row.get(11)?,
            order_id: row.get(12)?,
            state: OrderState::Intent,
            filled: row.get::<_, i64>(14)? as u64,
            avg_price: row.get(15)?,
            note: row.get(16)?,
        },
        [
            row.get(2)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
            row.get(13)?,
        ],
    ))
}

fn orders_where(
    conn: &Connection,
    clause: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Order>> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders o JOIN positions p ON p.id = o.position_id \
         {clause} ORDER BY o.created_at, o.rowid"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(args, order_from)?;
    rows.map(|row| {
        let (mut order, [purpose, side, kind, tif, state]) = row?;
        order.purpose = Purpose::parse(&purpose)?;
        order.side = Side::parse(&side).with_context(|| format!("bad side {side:?}"))?;
        order.order_type =
            OrderType::parse(&kind).with_context(|| format!("bad order type {kind:?}"))?;
        order.tif = match tif.as_str() {
            "GTC" => Tif::Gtc,
            _ => Tif::Day,
        };
        order.state = OrderState::parse(&state)?;
        Ok(order)
    })
    .collect()
}

/// The orders of one position, oldest first.
pub fn orders_of(conn: &Connection, position_id: i64) -> Result<Vec<Order>> {
    orders_where(conn, "WHERE o.position_id = ?1", &[&position_id])
}

/// Orders that may still fill or whose fate is unknown.
pub fn open_orders(conn: &Connection) -> Result<Vec<Order>> {
    orders_where(
        conn,
        "WHERE o.state IN ('intent', 'unknown', 'working')",
        &[],
    )
}

/// Every order ever journaled.
pub fn all_orders(conn: &Connection) -> Result<Vec<Order>> {
    orders_where(conn, "", &[])
}

/// One order by its client order id.
pub fn order(conn: &Connection, coid: &str) -> Result<Option<Order>> {
    Ok(orders_where(conn, "WHERE o.coid = ?1", &[&coid])?.pop())
}

/// Journals an order in state `intent`. Fails if the `coid` is taken: the
/// caller must look before it leaps.
pub fn insert_order(conn: &Connection, order: &Order, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "INSERT INTO orders (coid, position_id, purpose, parent_coid, conid, side, order_type,
             tif, quantity, price, aux_price, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'intent', ?12, ?12)",
        params![
            order.coid,
            order.position_id,
            order.purpose.as_str(),
            order.parent_coid,
            order.conid,
            order.side.as_str(),
            order.order_type.as_str(),
            order.tif.as_str(),
            order.quantity as i64,
            order.price,
            order.aux_price,
            timestamp(now)
        ],
    )
    .with_context(|| format!("failed to journal order {}", order.coid))?;
    Ok(())
}

/// Saves an order's mutable fields.
pub fn save_order(conn: &Connection, order: &Order, now: DateTime<Utc>) -> Result<()> {
    conn.execute(
        "UPDATE orders SET order_id = ?2, state = ?3, filled = ?4, avg_price = ?5, note = ?6,
             quantity = ?7, price = ?8, aux_price = ?9, updated_at = ?10
         WHERE coid = ?1",
        params![
            order.coid,
            order.order_id,
            order.state.as_str(),
            order.filled as i64,
            order.avg_price,
            order.note,
            order.quantity as i64,
            order.price,
            order.aux_price,
            timestamp(now)
        ],
    )?;
    Ok(())
}

/// Whether an execution was already accounted for.
pub fn has_fill(conn: &Connection, execution_id: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM fills WHERE execution_id = ?1",
            params![execution_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records an execution against an order.
#[allow(clippy::too_many_arguments)]
pub fn insert_fill(
    conn: &Connection,
    execution_id: &str,
    coid: &str,
    side: Side,
    quantity: u64,
    price: f64,
    trade_time: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO fills (execution_id, coid, side, quantity, price, trade_time, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            execution_id,
            coid,
            side.as_str(),
            quantity as i64,
            price,
            trade_time,
            timestamp(now)
        ],
    )?;
    Ok(())
}

/// The halt flag's key in the settings table.
pub const HALT_KEY: &str = "trading_halted";
