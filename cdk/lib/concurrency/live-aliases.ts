import { TimeZone } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ApiFunctionName, StageSettings, WarmFunctionName } from '../../config';
import { API_FUNCTIONS } from '../catalog';
import { KeygateFunction } from '../functions/rust-function';

export const LIVE_ALIAS = 'live';
export const WARM_FUNCTIONS: readonly WarmFunctionName[] = ['login', 'refresh'];

/** Target utilisation of provisioned concurrency above the scheduled floor. */
export const PROVISIONED_UTILIZATION_TARGET = 0.7;

export interface LiveAliasesProps {
  readonly settings: StageSettings;
  readonly functions: Readonly<Record<ApiFunctionName, KeygateFunction>>;
}

/**
 * A `live` alias on the current version of every API function; the API integrates with the
 * aliases, never with $LATEST. In stages that enable it, login and refresh keep provisioned
 * concurrency on their alias: a higher floor during weekday business hours, a low floor off hours
 * (Application Auto Scaling scheduled actions in the configured time zone), and target tracking on
 * utilisation up to the configured maximum.
 */
export class LiveAliases extends Construct {
  readonly byName: Readonly<Record<ApiFunctionName, lambda.Alias>>;

  constructor(scope: Construct, id: string, props: LiveAliasesProps) {
    super(scope, id);
    const { settings } = props;
    const c = settings.concurrency;
    const byName = {} as Record<ApiFunctionName, lambda.Alias>;

    for (const name of API_FUNCTIONS) {
      const fn = props.functions[name].fn;
      const warm = c.enabled && (WARM_FUNCTIONS as readonly string[]).includes(name) ? c.capacity[name as WarmFunctionName] : undefined;
      const alias = new lambda.Alias(this, `${name}-live`, {
        aliasName: LIVE_ALIAS,
        version: fn.currentVersion,
        description: `keygate ${settings.stageName} ${name}: what the API invokes`,
        provisionedConcurrentExecutions: warm && warm.offHours > 0 ? warm.offHours : undefined,
      });
      byName[name] = alias;

      if (warm && c.enabled) {
        const scaling = alias.addAutoScaling({ minCapacity: warm.offHours, maxCapacity: warm.max });
        scaling.scaleOnUtilization({ utilizationTarget: PROVISIONED_UTILIZATION_TARGET });
        const timeZone = TimeZone.of(c.timeZone);
        scaling.scaleOnSchedule('BusinessHoursStart', {
          schedule: appscaling.Schedule.cron({ minute: '0', hour: String(c.businessHoursStart), weekDay: 'MON-FRI' }),
          timeZone,
          minCapacity: warm.businessHours,
        });
        scaling.scaleOnSchedule('BusinessHoursEnd', {
          schedule: appscaling.Schedule.cron({ minute: '0', hour: String(c.businessHoursEnd), weekDay: 'MON-FRI' }),
          timeZone,
          minCapacity: warm.offHours,
        });
      }
    }
    this.byName = byName;
  }
}
