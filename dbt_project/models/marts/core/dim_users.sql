-- One row per signed-up user: every person_id that is a user_id. A user_id exists only once a
-- person signed up, so this includes users whose user_signed_up event itself was not kept
-- (e.g. dropped for lack of analytics consent): their signed_up_at is null.

with

events as (

    select * from {{ ref('stg_silver__events') }}
    where not is_anonymous_person

),

milestones as (

    select
        person_id,
        min(event_at) as first_seen_at,
        max(event_at) filter (where is_activity) as last_active_at,
        min(event_at) filter (where event_name = 'user_signed_up') as signed_up_at,
        min(event_date) filter (where event_name = 'user_signed_up') as signup_date,
        min(event_at) filter (where event_name = 'trial_started') as trial_started_at,
        min(event_date) filter (where event_name = 'trial_started') as trial_start_date,
        min(event_at) filter (where event_name = 'subscription_started') as converted_at,
        min(event_date) filter (where event_name = 'subscription_started') as converted_date,
        max(event_at) filter (where event_name = 'subscription_started') as last_subscription_started_at,
        max(event_at) filter (where event_name = 'subscription_cancelled') as cancelled_at,
        arg_max(plan, event_at) filter (where plan is not null) as plan,
        coalesce(
            sum(revenue) filter (
                where event_name = 'payment_succeeded'
                  and currency = {{ sql_string(var('reporting_currency')) }}
            ),
            0
        ) as lifetime_revenue

    from events
    group by person_id

),

-- Acquisition: the sign-up event when it carries any attribution, else the first page view
-- at or before the sign-up (any first page view when the sign-up was not observed).
signup_touch as (

    select person_id, referrer, utm_source, utm_medium, utm_campaign, event_name as touch_event_name
    from events
    where event_name = 'user_signed_up'
      and coalesce(referrer, utm_source, utm_medium, utm_campaign) is not null
    qualify row_number() over (partition by person_id order by event_at, event_id) = 1

),

first_page_view as (

    select
        events.person_id,
        events.referrer,
        events.utm_source,
        events.utm_medium,
        events.utm_campaign,
        events.event_name as touch_event_name

    from events
    inner join milestones on milestones.person_id = events.person_id
    where events.event_name = 'page_viewed'
      and (milestones.signed_up_at is null or events.event_at <= milestones.signed_up_at)
    qualify row_number() over (partition by events.person_id order by events.event_at, events.event_id) = 1

),

acquisition as (

    select
        milestones.person_id,
        case when signup_touch.person_id is not null then signup_touch.touch_event_name
             else first_page_view.touch_event_name end as acquisition_touch,
        case when signup_touch.person_id is not null then signup_touch.referrer
             else first_page_view.referrer end as acquisition_referrer,
        case when signup_touch.person_id is not null then signup_touch.utm_source
             else first_page_view.utm_source end as acquisition_utm_source,
        case when signup_touch.person_id is not null then signup_touch.utm_medium
             else first_page_view.utm_medium end as acquisition_utm_medium,
        case when signup_touch.person_id is not null then signup_touch.utm_campaign
             else first_page_view.utm_campaign end as acquisition_utm_campaign

    from milestones
    left join signup_touch on signup_touch.person_id = milestones.person_id
    left join first_page_view on first_page_view.person_id = milestones.person_id

),

final as (

    select
        milestones.person_id,
        milestones.first_seen_at,
        milestones.last_active_at,
        milestones.signed_up_at,
        milestones.signup_date,
        acquisition.acquisition_touch,
        acquisition.acquisition_referrer,
        acquisition.acquisition_utm_source,
        acquisition.acquisition_utm_medium,
        acquisition.acquisition_utm_campaign,
        milestones.plan,
        milestones.trial_started_at,
        milestones.trial_start_date,
        milestones.converted_at,
        milestones.converted_date,
        milestones.cancelled_at,
        coalesce(
            milestones.last_subscription_started_at is not null
            and (milestones.cancelled_at is null
                 or milestones.cancelled_at < milestones.last_subscription_started_at),
            false
        ) as is_paying,
        milestones.lifetime_revenue

    from milestones
    left join acquisition on acquisition.person_id = milestones.person_id

)

select * from final
