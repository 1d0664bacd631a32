with

source as (

    select * from {{ source('silver', 'events') }}

),

renamed as (

    select
        -- ids
        cast(event_id as varchar) as event_id,
        cast(person_id as varchar) as person_id,
        cast(user_id as varchar) as user_id,
        cast(anonymous_id as varchar) as anonymous_id,
        -- the client-side session id: silver names it client_session_id (lake/schemas.py), the
        -- original contract session_id; accept either. Not fct_sessions.session_id.
        cast(columns('^(client_)?session_id$') as varchar) as client_session_id,

        -- what happened
        cast(event_name as varchar) as event_name,
        cast(properties as varchar) as properties_json,
        {{ is_activity_event('event_name') }} as is_activity,
        starts_with(cast(person_id as varchar), 'anon:') as is_anonymous_person,

        -- context
        cast(device_type as varchar) as device_type,
        cast(browser_family as varchar) as browser_family,
        cast(locale as varchar) as locale,
        cast(consent_marketing as boolean) as has_marketing_consent,

        -- commerce
        cast(revenue as double) as revenue,
        cast(currency as varchar) as currency,
        cast(plan as varchar) as plan,

        -- product
        cast(onboarding_step as varchar) as onboarding_step,
        cast(feature as varchar) as feature,

        -- attribution
        cast(referrer as varchar) as referrer,
        cast(utm_source as varchar) as utm_source,
        cast(utm_medium as varchar) as utm_medium,
        cast(utm_campaign as varchar) as utm_campaign,

        -- time (UTC)
        cast(event_date as date) as event_date,
        cast(event_ts as timestamptz) as event_at,
        cast(received_at as timestamptz) as received_at,
        cast(_landing_partition as varchar) as landing_partition

    from source

)

select * from renamed
