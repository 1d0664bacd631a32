-- Trial-start cohorts (UTC date of a user's first trial_started): how many trials converted to
-- paid (first subscription_started at or after the trial start), how many within the window
-- (on or before trial_start_date + var('trial_conversion_window_days')), and how fast.

with

trials as (

    select
        person_id,
        trial_started_at,
        trial_start_date,
        case when converted_at >= trial_started_at then converted_at end as converted_at,
        case when converted_at >= trial_started_at then converted_date end as converted_date

    from {{ ref('dim_users') }}
    where trial_started_at is not null

),

observed as (

    select max(activity_date) as last_observed_date
    from {{ ref('int_events_aggregated_to_person_days') }}

),

final as (

    select
        trials.trial_start_date,
        count(*) as trials,
        count(trials.converted_at) as converted_users,
        count(trials.converted_at) / count(*) as conversion_rate,
        count(*) filter (
            where trials.converted_date
                <= trials.trial_start_date + {{ var('trial_conversion_window_days') | int }}
        ) as converted_in_window,
        trials.trial_start_date + {{ var('trial_conversion_window_days') | int }}
            <= any_value(observed.last_observed_date) as is_window_closed,
        case
            when trials.trial_start_date + {{ var('trial_conversion_window_days') | int }}
                <= any_value(observed.last_observed_date)
            then count(*) filter (
                where trials.converted_date
                    <= trials.trial_start_date + {{ var('trial_conversion_window_days') | int }}
            ) / count(*)
        end as window_conversion_rate,
        median(epoch(trials.converted_at - trials.trial_started_at) / 86400.0) as median_days_to_convert

    from trials
    cross join observed
    group by trials.trial_start_date

)

select * from final
