import { Stage, StageProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { StageSettings } from '../config';
import { KeygateServiceStack } from './service-stack';

export interface KeygateStageProps extends StageProps {
  readonly settings: StageSettings;
  readonly manifestPath?: string;
}

/**
 * One deployable keygate stage (dev, staging or prod): the unit the pipeline promotes and that
 * `cdk deploy` can deploy directly. Its one stack is named after the stage (keygate-<stage>), so
 * a direct deploy and the pipeline manage the same CloudFormation stack.
 */
export class KeygateStage extends Stage {
  readonly service: KeygateServiceStack;

  constructor(scope: Construct, id: string, props: KeygateStageProps) {
    const { settings } = props;
    super(scope, id, { ...props, env: props.env ?? { account: settings.target.account, region: settings.target.region } });
    this.service = new KeygateServiceStack(this, 'Service', { settings, manifestPath: props.manifestPath });
  }
}
