import * as apigateway from 'aws-cdk-lib/aws-apigateway';

/**
 * JSON request models the gateway validates before invoking a function: the shape only (an
 * object with the required string members). Limits and strict parsing stay in the functions,
 * which answer with the precise problem; the gateway rejects what cannot be a request at all.
 */
const str = (maxLength: number): apigateway.JsonSchema => ({ type: apigateway.JsonSchemaType.STRING, minLength: 1, maxLength });

const EMAIL = str(320);
/** Generous: the password policy (and its max length) is the function's to enforce with its own problem. */
const PASSWORD = str(4096);
const REFRESH_TOKEN = str(1024);
const DEVICE_ID = str(256);

function object(required: Record<string, apigateway.JsonSchema>, optional: Record<string, apigateway.JsonSchema> = {}): apigateway.JsonSchema {
  return {
    schema: apigateway.JsonSchemaVersion.DRAFT4,
    type: apigateway.JsonSchemaType.OBJECT,
    required: Object.keys(required),
    properties: { ...required, ...optional },
  };
}

/** By endpoint name (cdk/contract.json); endpoints without a body have none. */
export const REQUEST_MODELS: Readonly<Record<string, apigateway.JsonSchema>> = {
  register: object({ email: EMAIL, password: PASSWORD }),
  login: object({ email: EMAIL, password: PASSWORD }, { device_id: DEVICE_ID }),
  refresh: object({ refresh_token: REFRESH_TOKEN }, { device_id: DEVICE_ID }),
  logout: object({ refresh_token: REFRESH_TOKEN }),
  password: object({ current_password: PASSWORD, new_password: PASSWORD }),
};
