"""The official `google-genai` SDK against the Gemini mock's Live API over wss:
a spoken voice command (a real PCM tone) through to a function call and a
spoken answer, silence left unanswered, and what the service refuses."""

import asyncio
import math
import struct

from google import genai
from google.genai import errors, types

from _mocks import env, step

LIVE = env("MOCK_GEMINI_TLS_URL")  # https://localhost:PORT, trusted through SSL_CERT_FILE
env("SSL_CERT_FILE")

RATE = 16000
MIME = f"audio/pcm;rate={RATE}"


def pcm(hz, ms, amplitude=8000):
    """16-bit little-endian mono PCM: a sine of `hz` (0 for silence)."""
    n = RATE * ms // 1000
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * hz * i / RATE)) for i in range(n)))


def rms(data):
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


async def send_audio(session, data, chunk_ms=100, **blob):
    size = RATE * 2 * chunk_ms // 1000
    for i in range(0, len(data), size):
        await session.send_realtime_input(audio=types.Blob(data=data[i:i + size], mime_type=MIME), **blob)


async def next_message(session, timeout=10):
    return await asyncio.wait_for(session._receive(), timeout)


client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=LIVE))
get_leads = types.FunctionDeclaration(name="get_leads", parameters=types.Schema(type=types.Type.OBJECT, properties={"status": types.Schema(type=types.Type.STRING)}))
create_activity = types.FunctionDeclaration(name="create_activity", parameters=types.Schema(type=types.Type.OBJECT, properties={"description": types.Schema(type=types.Type.STRING)}))


async def voice_command():
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        tools=[types.Tool(function_declarations=[get_leads])],
    )
    async with client.aio.live.connect(model="gemini-live-2.5-flash-preview", config=config) as session:
        # Silence is not speech: the service waits, and so does the mock.
        await send_audio(session, pcm(0, 1500))
        await session.send_realtime_input(audio_stream_end=True)
        try:
            message = await next_message(session, timeout=1.5)
            raise AssertionError(f"silence must get no answer, got {message}")
        except asyncio.TimeoutError:
            pass
        step("Live: 1.5 s of silence and audioStreamEnd get no turn")

        # A 440 Hz burst says "Show me my new leads" (fixtures/mocks/gemini.yaml),
        # ended by 700 ms of trailing silence (voice activity detection).
        await send_audio(session, pcm(0, 300) + pcm(440, 1000) + pcm(0, 700))
        heard, tool_call = None, None
        while tool_call is None:
            message = await next_message(session)
            content = message.server_content
            if content and content.input_transcription:
                heard = content.input_transcription.text
            tool_call = message.tool_call
        assert heard == "Show me my new leads", heard
        fc = tool_call.function_calls[0]
        assert fc.name == "get_leads" and fc.args == {"status": "new"} and fc.id, fc
        step("Live: spoken PCM (realtimeInput.audio) -> inputTranscription -> toolCall get_leads {status: new}")

        await session.send_tool_response(function_responses=[types.FunctionResponse(id=fc.id, name=fc.name, response={"count": 2})])
        audio, said, complete = b"", "", False
        async for message in session.receive():
            content = message.server_content
            if message.data:
                audio += message.data
            if content and content.output_transcription:
                said += content.output_transcription.text
            if content and content.turn_complete:
                complete = True
                assert message.usage_metadata.total_token_count > 0
        assert complete and said == "This is a mock Gemini answer to: Show me my new leads", said
        assert len(audio) >= 24000 * 2 * 0.1 * len(said.split()) and rms(audio) > 1000, (len(audio), rms(audio))
        step(f"Live: spoken answer, {len(audio)} bytes of 24 kHz PCM (RMS {rms(audio):.0f}) with outputTranscription, turnComplete")


async def manual_activity_with_media_chunks():
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT],
        realtime_input_config=types.RealtimeInputConfig(automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)),
        tools=[types.Tool(function_declarations=[create_activity])],
    )
    async with client.aio.live.connect(model="gemini-2.0-flash-live-001", config=config) as session:
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await session.send_realtime_input(media=types.Blob(data=pcm(660, 800), mime_type=MIME))  # the older mediaChunks
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        message = await next_message(session)
        fc = message.tool_call.function_calls[0]
        assert fc.name == "create_activity" and fc.args == {"description": "the customer wants a callback"}, fc
    step("Live: manual activity (activityStart, mediaChunks, activityEnd) -> toolCall create_activity")


async def refused(model, config, act, code, reason):
    try:
        async with client.aio.live.connect(model=model, config=config) as session:
            await act(session)
            message = await next_message(session)
        raise AssertionError(f"expected APIError {code}, got {message}")
    except errors.APIError as e:
        assert e.code == code and reason in str(e), (e.code, str(e))
        return str(e)


async def nothing(session):
    pass


async def refusals():
    text = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    e = await refused("no-such-model", text, nothing, 1008, "models/no-such-model is not found for API version v1, or is not supported for bidiGenerateContent")
    await refused("gemini-2.0-flash", text, nothing, 1008, "models/gemini-2.0-flash is not found for API version v1, or is not supported for bidiGenerateContent")
    step(f"Live: unknown or non-Live model refused at setup with APIError 1008: {e}")

    async def mp3(session):
        await session.send_realtime_input(audio=types.Blob(data=b"ID3\x03\x00", mime_type="audio/mpeg"))
    e = await refused("gemini-2.0-flash-live-001", text, mp3, 1007, 'Unsupported mime type "audio/mpeg" for realtime_input.audio')
    step(f"Live: audio it cannot read closes with 1007: {e}")

    async def activity(session):
        await session.send_realtime_input(activity_start=types.ActivityStart())
    e = await refused("gemini-2.0-flash-live-001", text, activity, 1007, "automaticActivityDetection.disabled")
    step(f"Live: activityStart under automatic activity detection closes with 1007: {e}")

    async def garbage(session):
        await session._ws.send("{not json")
    e = await refused("gemini-2.0-flash-live-001", text, garbage, 1007, "Invalid JSON payload received.")
    step(f"Live: malformed JSON closes with 1007: {e}")

    async def unknown_kind(session):
        await session._ws.send('{"client_command": {"stop": true}}')
    e = await refused("gemini-2.0-flash-live-001", text, unknown_kind, 1007, 'Unknown name "client_command"')
    step(f"Live: an unknown message kind closes with 1007: {e}")


async def main():
    await voice_command()
    await manual_activity_with_media_chunks()
    await refusals()


asyncio.run(main())
