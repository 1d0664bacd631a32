-- The overall evaluation criterion, one row per UTC date, with the date's data-trust verdict.
-- Definitions: _growth__models.yml. The figures are incremental (int_daily_oec_figures); the
-- verdict is joined on every run, since a date becomes trusted again when its failed gate is
-- re-run or accepted (lake/trust.py decides; the loops use the same verdict).

with

figures as (

    select * from {{ ref('int_daily_oec_figures') }}

),

trust as (

    select * from {{ ref('stg_observability__data_trust_daily') }}

),

final as (

    select
        figures.*,
        coalesce(trust.is_trusted, false) as is_trusted,
        case
            when trust.date_day is null
                then 'no trust verdict for this date: build the warehouse with growthlake'
            else trust.untrusted_reasons
        end as untrusted_reasons

    from figures
    left join trust on trust.date_day = figures.date_day

)

select * from final
