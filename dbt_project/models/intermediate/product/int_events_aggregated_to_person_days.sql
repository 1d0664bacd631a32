-- One row per person and UTC date with at least one event: the building block of every
-- activity, retention and revenue metric (computed once, read by several marts).

with

events as (

    select * from {{ ref('stg_silver__events') }}

),

aggregated as (

    select
        person_id,
        event_date as activity_date,
        bool_or(is_anonymous_person) as is_anonymous_person,
        bool_or(is_activity) as is_active,
        count(*) as events,
        count(*) filter (where is_activity) as activity_events,
        coalesce(
            sum(revenue) filter (where currency = {{ sql_string(var('reporting_currency')) }}),
            0
        ) as revenue

    from events
    group by person_id, event_date

)

select * from aggregated
