with

source as (

    select * from {{ source('silver', 'sessions') }}

),

renamed as (

    select
        -- ids
        cast(session_id as varchar) as session_id,
        cast(person_id as varchar) as person_id,
        starts_with(cast(person_id as varchar), 'anon:') as is_anonymous_person,

        -- what happened
        cast(event_count as bigint) as event_count,
        cast(duration_s as double) as duration_s,
        cast(first_event_name as varchar) as first_event_name,
        cast(device_type as varchar) as device_type,
        cast(is_bounce as boolean) as is_bounce,

        -- time (UTC)
        cast(session_date as date) as session_date,
        cast(session_start as timestamptz) as session_started_at,
        cast(session_end as timestamptz) as session_ended_at

    from source

)

select * from renamed
