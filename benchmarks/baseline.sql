-- The bare-DuckDB baseline of benchmarks/bench_chain.py: the same landing files, the same work done
-- as plainly as DuckDB allows — no contract, no gates, no Delta, no exactly-once bookkeeping:
-- parse, keep consented events with an id and a timestamp, dedup on event_id (first received),
-- mask the IP with a keyed hash, stitch anonymous devices to users, and build the OEC per day
-- (active users, revenue, revenue per active user, D7 retention, trial-to-paid in 14 days).
-- Placeholders filled in by the benchmark: {landing} (glob of the landing files), {key} (PII key),
-- {out} (folder for the events Parquet file).

create or replace table raw as
select *
from read_json('{landing}', format = 'newline_delimited', ignore_errors = true, union_by_name = true,
               columns = {event_id: 'VARCHAR', event_name: 'VARCHAR', "timestamp": 'VARCHAR',
                          received_at: 'VARCHAR', user_id: 'VARCHAR', anonymous_id: 'VARCHAR',
                          session_id: 'VARCHAR', properties: 'JSON', context: 'JSON'});

create or replace table events as
with typed as (
    select
        event_id,
        event_name,
        try_cast("timestamp" as timestamptz) as event_ts,
        try_cast(received_at as timestamptz) as received_ts,
        user_id,
        anonymous_id,
        properties,
        sha256('{key}' || coalesce(json_extract_string(context, '$.ip'), '')) as ip_hash,
        json_extract_string(context, '$.consent.analytics') = 'true' as analytics
    from raw
),
valid as (
    select * from typed
    where event_id is not null and event_name is not null and event_ts is not null and analytics
      and (user_id is not null or anonymous_id is not null)
      and event_ts between received_ts - interval 30 days and received_ts + interval 10 minutes
)
select * exclude (rn) from (
    select *, row_number() over (partition by event_id order by received_ts) as rn from valid
) where rn = 1;

copy (select * exclude (properties), properties::varchar as properties from events)
    to '{out}/events.parquet' (format parquet);

create or replace table identity_map as
select anonymous_id, arg_min(user_id, event_ts) as user_id
from events where user_id is not null and anonymous_id is not null
group by anonymous_id;

create or replace table person_events as
select
    e.*,
    coalesce(e.user_id, m.user_id, 'anon:' || e.anonymous_id) as person_id,
    cast(e.event_ts as date) as event_date
from events e left join identity_map m using (anonymous_id);

create or replace table person_days as
select
    person_id,
    event_date,
    bool_or(event_name not in ('subscription_started', 'subscription_cancelled', 'payment_succeeded',
                               'payment_failed', 'email_opened', 'email_clicked', 'experiment_viewed',
                               'user_identified', 'user_aliased', 'user_grouped')) as is_active,
    sum(case when event_name = 'payment_succeeded' and json_extract_string(properties, '$.currency') = 'USD'
             then try_cast(json_extract_string(properties, '$.amount') as double) end) as revenue
from person_events
group by all;

create or replace table users as
select
    person_id,
    min(event_date) filter (where event_name = 'user_signed_up') as signup_date,
    min(event_date) filter (where event_name = 'trial_started') as trial_start_date,
    min(event_date) filter (where event_name = 'subscription_started') as converted_date
from person_events
where not starts_with(person_id, 'anon:')
group by person_id;

create or replace table fct_daily_oec as
with days as (
    select distinct event_date as date_day from person_days
),
dau as (
    select event_date as date_day, count(*) as active_users
    from person_days where is_active and not starts_with(person_id, 'anon:') group by all
),
revenue as (
    select event_date as date_day, sum(revenue) as revenue from person_days group by all
),
d7 as (
    select u.signup_date + 7 as date_day, count(*) as cohort_users,
           count(*) filter (where pd.is_active) / count(*) as d7_retention
    from users u left join person_days pd on pd.person_id = u.person_id and pd.event_date = u.signup_date + 7
    where u.signup_date is not null group by all
),
trials as (
    select trial_start_date + 14 as date_day, count(*) as trials,
           count(*) filter (where converted_date between trial_start_date and trial_start_date + 14) / count(*)
               as trial_to_paid_rate
    from users where trial_start_date is not null group by all
)
select
    days.date_day,
    coalesce(dau.active_users, 0) as active_users,
    coalesce(revenue.revenue, 0) as revenue,
    coalesce(revenue.revenue, 0) / nullif(dau.active_users, 0) as revenue_per_active_user,
    d7.d7_retention,
    trials.trial_to_paid_rate
from days
left join dau using (date_day)
left join revenue using (date_day)
left join d7 using (date_day)
left join trials using (date_day)
order by date_day;
