"""WeChat Pay API v3 (微信支付 APIv3): Native, H5 and JSAPI payments, refunds and trade bills, and its simulator."""
