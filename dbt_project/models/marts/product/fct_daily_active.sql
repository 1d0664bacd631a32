{{
    config(
        materialized='incremental',
        unique_key='date_day',
        incremental_strategy='delete+insert',
        on_schema_change='fail'
    )
}}
-- Daily, weekly (7-day) and monthly (28-day) active signed-up users, one row per UTC date from
-- the first to the last date with any silver event.
--
-- Incremental: the row of a date depends only on activity of that date and the 27 before it,
-- so a run recomputes the last var('incremental_lookback_days') dates (delete+insert on
-- date_day), reading 27 days more of person-days, instead of the whole history each time.

with

person_days as (

    select * from {{ ref('int_events_aggregated_to_person_days') }}

),

bounds as (

    select
        {% if is_incremental() %}
        greatest(min(activity_date), {{ incremental_start_date('min(activity_date)') }}) as start_date,
        {% else %}
        min(activity_date) as start_date,
        {% endif %}
        max(activity_date) as end_date

    from person_days

),

date_spine as (

    select cast(unnest(generate_series(
        cast(start_date as timestamp), cast(end_date as timestamp), interval 1 day
    )) as date) as date_day
    from bounds
    where start_date is not null

),

active_users as (

    select person_id, activity_date
    from person_days
    where is_active
      and not is_anonymous_person
      and activity_date >= (select start_date - 27 from bounds)

),

final as (

    select
        date_spine.date_day,
        count(distinct active_users.person_id)
            filter (where active_users.activity_date = date_spine.date_day) as dau,
        count(distinct active_users.person_id)
            filter (where active_users.activity_date > date_spine.date_day - 7) as wau,
        count(distinct active_users.person_id) as mau

    from date_spine
    left join active_users
        on active_users.activity_date between date_spine.date_day - 27 and date_spine.date_day
    group by date_spine.date_day

)

select * from final
