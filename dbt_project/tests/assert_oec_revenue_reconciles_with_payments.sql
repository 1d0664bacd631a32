-- Total OEC revenue equals every payment in the reporting currency in silver. After erasures
-- or silver backfills older than var('incremental_lookback_days'), the incremental OEC no
-- longer reconciles: rebuild with a full refresh.
-- It refs two models; meta.dagster.ref names the one it checks, so Dagster runs it as a blocking
-- asset check of marts/fct_daily_oec rather than logging it as an observation.
{{ config(severity='error', meta={'dagster': {'ref': {'name': 'fct_daily_oec'}}}) }}

with

oec as (

    select coalesce(sum(revenue), 0) as revenue from {{ ref('fct_daily_oec') }}

),

payments as (

    select coalesce(sum(revenue), 0) as revenue
    from {{ ref('stg_silver__events') }}
    where currency = {{ sql_string(var('reporting_currency')) }}

)

select oec.revenue as oec_revenue, payments.revenue as payments_revenue
from oec cross join payments
where abs(oec.revenue - payments.revenue) > 1e-6
