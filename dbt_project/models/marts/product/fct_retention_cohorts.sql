-- Sign-up cohort x day N retention (N in 1, 7, 30): a user is retained on day N when active on
-- the UTC date signup_date + N. A (cohort, N) row exists once that date has been observed (it
-- is on or before the last date with any silver event); until then retention is unknown, not 0.
-- Day 7 feeds the OEC (fct_daily_oec.d7_retention): keep it in the list.

with

users as (

    select person_id, signup_date
    from {{ ref('dim_users') }}
    where signup_date is not null

),

person_days as (

    select * from {{ ref('int_events_aggregated_to_person_days') }}

),

active_days as (

    select person_id, activity_date
    from person_days
    where is_active

),

observed as (

    select max(activity_date) as last_observed_date
    from person_days

),

day_numbers as (

    select unnest([1, 7, 30]) as day_n

),

cohort_members as (

    select
        users.person_id,
        users.signup_date as cohort_date,
        day_numbers.day_n,
        users.signup_date + day_numbers.day_n as retention_date

    from users
    cross join day_numbers
    cross join observed
    where users.signup_date + day_numbers.day_n <= observed.last_observed_date

),

final as (

    select
        cohort_members.cohort_date,
        cast(cohort_members.day_n as integer) as day_n,
        count(*) as cohort_users,
        count(active_days.person_id) as retained_users,
        count(active_days.person_id) / count(*) as retention_rate

    from cohort_members
    left join active_days
        on active_days.person_id = cohort_members.person_id
        and active_days.activity_date = cohort_members.retention_date
    group by cohort_members.cohort_date, cohort_members.day_n

)

select * from final
