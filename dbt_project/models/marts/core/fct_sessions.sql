-- One row per session, with the user's age (days since sign-up) when it happened.

with

sessions as (

    select * from {{ ref('stg_silver__sessions') }}

),

users as (

    select person_id, signup_date from {{ ref('dim_users') }}

),

final as (

    select
        sessions.session_id,
        sessions.person_id,
        sessions.is_anonymous_person,
        sessions.session_started_at,
        sessions.session_ended_at,
        sessions.session_date,
        sessions.event_count,
        sessions.duration_s,
        sessions.first_event_name,
        sessions.device_type,
        sessions.is_bounce,
        sessions.session_date - users.signup_date as days_since_signup

    from sessions
    left join users on users.person_id = sessions.person_id

)

select * from final
