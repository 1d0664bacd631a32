-- One row per person and UTC date with at least one event: the building block of every
-- activity, retention and revenue metric (computed once, read by several marts). `is_active` and
-- `revenue` are the metric layer's measures `active` and `revenue`, the loops' definitions too.

with

events as (

    select * from {{ ref('stg_silver__events') }}

),

aggregated as (

    select
        person_id,
        event_date as activity_date,
        bool_or(is_anonymous_person) as is_anonymous_person,
        -- the metric layer's measures (dbt_project.yml var metric_layer, macros/metric_layer.sql)
        {{ metric_layer_measure('active') }} as is_active,
        count(*) as events,
        count(*) filter (where is_activity) as activity_events,
        {{ metric_layer_measure('revenue') }} as revenue

    from events
    group by person_id, event_date

)

select * from aggregated
