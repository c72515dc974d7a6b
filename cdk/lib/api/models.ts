import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import openapiJson from '../../../handlers/http/openapi.json';

/**
 * JSON request models the gateway validates before invoking a function: the shape only (an object
 * with its required members, each of its type), taken from the request bodies of keygate's OpenAPI
 * document (handlers/http/openapi.json, which a Rust test keeps equal to the router), so a body
 * member is declared in Rust and in that document, never here. Limits and strict parsing stay in
 * the functions, which answer with the precise problem; the gateway rejects what cannot be a request
 * at all.
 */

interface OpenApiSchema {
  readonly $ref?: string;
  readonly type?: string;
  readonly required?: readonly string[];
  readonly properties?: Readonly<Record<string, OpenApiSchema>>;
}

interface OpenApiOperation {
  readonly operationId?: string;
  readonly requestBody?: { readonly content: Readonly<Record<string, { readonly schema?: OpenApiSchema }>> };
}

interface OpenApiDocument {
  readonly paths: Readonly<Record<string, Readonly<Record<string, OpenApiOperation>>>>;
  readonly components: { readonly schemas: Readonly<Record<string, OpenApiSchema>> };
}

const OPENAPI = openapiJson as unknown as OpenApiDocument;

function resolve(schema: OpenApiSchema): OpenApiSchema {
  const prefix = '#/components/schemas/';
  if (!schema.$ref) {
    return schema;
  }
  const target = schema.$ref.startsWith(prefix) ? OPENAPI.components.schemas[schema.$ref.slice(prefix.length)] : undefined;
  if (!target) {
    throw new Error(`handlers/http/openapi.json: unresolved ${schema.$ref}`);
  }
  return target;
}

const MEMBER_TYPES: Readonly<Record<string, apigateway.JsonSchemaType>> = {
  string: apigateway.JsonSchemaType.STRING,
  boolean: apigateway.JsonSchemaType.BOOLEAN,
  integer: apigateway.JsonSchemaType.INTEGER,
  number: apigateway.JsonSchemaType.NUMBER,
};

/** A JSON request body as a draft-4 gateway model: object, required members, member types. */
function gatewayModel(operationId: string, body: OpenApiSchema): apigateway.JsonSchema {
  const schema = resolve(body);
  const properties: Record<string, apigateway.JsonSchema> = {};
  for (const [name, member] of Object.entries(schema.properties ?? {})) {
    const type = MEMBER_TYPES[resolve(member).type ?? ''];
    if (!type) {
      throw new Error(`handlers/http/openapi.json: ${operationId}.${name} has no type a gateway model takes`);
    }
    properties[name] = { type };
  }
  return {
    schema: apigateway.JsonSchemaVersion.DRAFT4,
    type: apigateway.JsonSchemaType.OBJECT,
    required: [...(schema.required ?? [])],
    properties,
  };
}

/**
 * By endpoint name (the document's operationId is the endpoint's name in keygate-http and
 * cdk/contract.json); endpoints without a JSON body (the OAuth endpoints take forms) have none.
 */
export const REQUEST_MODELS: Readonly<Record<string, apigateway.JsonSchema>> = Object.fromEntries(
  Object.values(OPENAPI.paths)
    .flatMap((operations) => Object.values(operations))
    .flatMap((op) => {
      const schema = op.requestBody?.content['application/json']?.schema;
      return op.operationId && schema ? [[op.operationId, gatewayModel(op.operationId, schema)] as const] : [];
    }),
);
