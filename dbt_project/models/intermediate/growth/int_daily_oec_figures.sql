{{
    config(
        materialized='incremental',
        unique_key='date_day',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}
-- The figures of the overall evaluation criterion, one row per UTC date (marts.fct_daily_oec adds
-- each date's data-trust verdict). Definitions: marts/growth/_growth__models.yml, fct_daily_oec.
-- Every figure of a date only uses events up to that date (d7 retention of the cohort that
-- signed up 7 days before, trials started 14 days before with a window closing that day), so a
-- row is final once late events have arrived: an incremental run recomputes only the last
-- var('incremental_lookback_days') dates.

with

daily_active as (

    select date_day, dau
    from {{ ref('fct_daily_active') }}
    {% if is_incremental() %}
    where date_day >= {{ incremental_start_date("date '0001-01-01'") }}
    {% endif %}

),

daily_revenue as (

    select activity_date as date_day, sum(revenue) as revenue
    from {{ ref('int_events_aggregated_to_person_days') }}
    group by activity_date

),

d7_retention as (

    select cohort_date + 7 as date_day, cohort_users, retention_rate
    from {{ ref('fct_retention_cohorts') }}
    where day_n = 7

),

trial_cohorts as (

    select
        trial_start_date + {{ var('trial_conversion_window_days') | int }} as date_day,
        trials,
        window_conversion_rate
    from {{ ref('fct_trial_conversion') }}

),

final as (

    select
        daily_active.date_day,
        daily_active.dau as active_users,
        coalesce(daily_revenue.revenue, 0) as revenue,
        case
            when daily_active.dau > 0 then coalesce(daily_revenue.revenue, 0) / daily_active.dau
        end as revenue_per_active_user,
        coalesce(d7_retention.cohort_users, 0) as d7_cohort_users,
        d7_retention.retention_rate as d7_retention,
        coalesce(trial_cohorts.trials, 0) as trial_cohort_trials,
        trial_cohorts.window_conversion_rate as trial_to_paid_rate

    from daily_active
    left join daily_revenue on daily_revenue.date_day = daily_active.date_day
    left join d7_retention on d7_retention.date_day = daily_active.date_day
    left join trial_cohorts on trial_cohorts.date_day = daily_active.date_day

)

select * from final
